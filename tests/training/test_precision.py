import logging

import pytest
import torch

from degradation.training import precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "flags, units",
    [
        ("fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16", "AMX"),
        ("fpu avx2 avx512f avx512_bf16", "AVX-512 BF16"),
        ("fpu avx2 avx512f avx512_vnni", "none"),
        ("fpu sse4_2 avx avx2 fma", "none"),
    ],
)
def test_the_cpus_bf16_units_are_read_from_its_flags(flags, units):
    assert precision.bf16_units_in(flags.split()) == units


@pytest.mark.parametrize(
    "units, chosen, warnings", [("AMX", "bf16-mixed", 0), ("AVX-512 BF16", "bf16-mixed", 0), ("none", "32-true", 1)]
)
def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_units_and_says_so_once_where_not(
    monkeypatch, caplog, units, chosen, warnings
):
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: units)
    with caplog.at_level(logging.WARNING, logger=precision.log.name):
        assert precision.run_precision("auto", CPU) == chosen
    assert len(caplog.records) == warnings
    assert all("no bf16 units" in record.getMessage() for record in caplog.records)


def test_asked_precisions_are_kept_and_bf16_on_a_cpu_without_bf16_units_warns(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: "none")
    with caplog.at_level(logging.WARNING, logger=precision.log.name):
        assert precision.run_precision("32-true", CPU) == "32-true"
        assert not caplog.records
        assert precision.run_precision("bf16-mixed", CPU) == "bf16-mixed"
    [warning] = caplog.records
    assert "emulates bf16" in warning.getMessage() and "trainer.precision=auto" in warning.getMessage()
