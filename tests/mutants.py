"""`make mutants` (`python tests/mutants.py [--only TEXT] [--list]`): do the tests catch a broken promise?

Each mutation below changes one line of the product in a scratch copy of the checkout and runs the
test that should catch it; the mutation is caught when that test fails. Prints one line per mutation
(caught / SURVIVED / SKIPPED, when its test skipped, e.g. the SLURM tests without a cluster: start one with
tests/slurm/cluster.sh / STALE, when the line to change is no longer in the file) and exits 1 unless every
mutation is caught. The list is the one home of "which test guards which promise": add a line here with
every promise the README and docs/ make.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    promise: str  # what breaks
    file: str  # relative to the repository root
    original: str  # the exact text, found exactly once in file
    mutant: str
    test: str  # the pytest node id that must fail


MUTATIONS = [
    # --- reliability (docs/reliability.md) ------------------------------------------------------------------
    Mutation("checkpoints written in place, no temporary file, no previous.ckpt",
             "src/degradation/training/checkpoint_io.py", "        write_atomically(path, buffer.getvalue(), keep_previous_as=path.with_name(PREVIOUS_CHECKPOINT))\n",
             "        path.write_bytes(buffer.getvalue())\n",
             "tests/reliability/test_interruption.py::test_a_run_killed_at_any_moment_ends_as_an_uninterrupted_one[kill-checkpoint:2]"),
    Mutation("checkpoints written in place (the full-disk test)",
             "src/degradation/training/checkpoint_io.py", "        write_atomically(path, buffer.getvalue(), keep_previous_as=path.with_name(PREVIOUS_CHECKPOINT))\n",
             "        path.write_bytes(buffer.getvalue())\n",
             "tests/reliability/test_failing_parts.py::test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint"),
    Mutation("metrics rows cut by a kill are kept",
             "src/degradation/runs/rundir.py",
             '    kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]\n',
             '    kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step or True]\n',
             "tests/reliability/test_interruption.py::test_a_run_killed_at_any_moment_ends_as_an_uninterrupted_one[kill-metrics:5]"),
    Mutation("no checkpoint on a preemption signal",
             "src/degradation/training/callbacks.py", "        trainer.save_checkpoint(self.path)\n", "        pass\n",
             "tests/reliability/test_preemption.py::test_a_preempted_run_checkpoints_where_it_stopped_and_resumes_from_there[TERM]"),
    Mutation("a signal during an evaluation checkpoints half an evaluation",
             "src/degradation/training/callbacks.py", "        if trainer.validating:  # half an evaluation", "        if False:  # half an evaluation",
             "tests/reliability/test_preemption.py::test_a_signal_during_an_evaluation_resumes_from_the_checkpoint_before_it"),
    Mutation("no fallback to previous.ckpt",
             "src/degradation/runs/checkpoints.py", "    for path in (last, last.with_name(PREVIOUS_CHECKPOINT)):\n",
             "    for path in (last,):\n",
             "tests/reliability/test_interruption.py::test_a_corrupt_last_checkpoint_falls_back_to_the_previous_one_with_a_warning"),
    Mutation("W&B errors not caught",
             "src/degradation/runs/tracking.py", "    except Exception as error:\n        if resolve_mode(",
             "    except ZeroDivisionError as error:\n        if resolve_mode(",
             "tests/reliability/test_failing_parts.py::test_wandb_unreachable_falls_back_to_offline_logging_with_one_warning"),
    Mutation("disk errors not caught",
             "src/degradation/cli.py", "    except OSError as error:\n        # A full disk",
             "    except ZeroDivisionError as error:\n        # A full disk",
             "tests/reliability/test_failing_parts.py::test_a_full_disk_stops_the_run_with_one_line_and_the_last_checkpoint_intact"),
    Mutation("no lock on a run directory",
             "src/degradation/training/lifecycle.py", "    lock.acquire()  # two processes never train one run directory\n",
             "    pass\n",
             "tests/reliability/test_concurrency.py::test_two_sweeps_started_together_split_the_work_and_train_each_run_once"),
    Mutation("NaN/inf not checked",
             "src/degradation/training/module.py", "            if value is not None and not math.isfinite(value):\n",
             "            if False:\n",
             "tests/reliability/test_divergence.py::test_a_run_that_diverges_keeps_its_last_good_checkpoint_and_metrics"),
    Mutation("lr <= 0 accepted",
             "src/degradation/schema.py", "    lr: float = rule(*positive)\n", "    lr: float = MISSING\n",
             "tests/reliability/test_bad_input.py::test_a_bad_config_value_ends_with_one_line_and_writes_nothing[negative lr]"),
    Mutation("a kill between the two renames is not survived (checkpoint written in place)",
             "src/degradation/training/checkpoint_io.py", "        write_atomically(path, buffer.getvalue(), keep_previous_as=path.with_name(PREVIOUS_CHECKPOINT))\n",
             "        path.write_bytes(buffer.getvalue())\n",
             "tests/reliability/test_interruption.py::test_a_run_killed_at_any_moment_ends_as_an_uninterrupted_one[kill-rename:2]"),
    # --- the paper's protocol -------------------------------------------------------------------------------
    Mutation("images padded before the mean is subtracted (padding = -mean)",
             "src/degradation/data/cifar10.py",
             "            chunk = normalize(self.split.images[index], self.mean)\n            if self.train:\n"
             "                chunk = crop_and_flip(chunk, offsets[index], flips[index], self.pad)\n"
             "            images[start : start + len(index)] = chunk\n",
             "            chunk = self.split.images[index].float().div(255.0)\n            if self.train:\n"
             "                chunk = crop_and_flip(chunk, offsets[index], flips[index], self.pad)\n"
             "            images[start : start + len(index)] = chunk - self.mean\n",
             "tests/data/test_cifar10.py::test_padding_is_zero_after_mean_subtraction"),
    Mutation("ResNet-110 loses its warm-up",
             "src/degradation/training/config.py", "    return cfg.optim.warmup_steps if on else 0\n", "    return 0\n",
             "tests/training/test_module.py::test_the_optimizer_follows_the_paper_schedule_step_by_step"),
    Mutation("the learning-rate milestones are dropped",
             "src/degradation/training/module.py", '            milestones=tuple(optim["milestones"]),\n', "            milestones=(),\n",
             "tests/training/test_module.py::test_the_optimizer_follows_the_paper_schedule_step_by_step"),
    Mutation("Table 6 reports the final test error despite a validation split",
             "src/degradation/report/figures.py",
             '    """The run\'s final test error, or, with a validation split, the test error where validation was best."""\n',
             '    """The run\'s final test error, or, with a validation split, the test error where validation was best."""\n'
             "    return run.final_test_err\n",
             "tests/report/test_figures.py::test_table6_reports_the_test_error_where_validation_was_best_not_the_final_one"),
    Mutation("logger not allowed to differ on resume",
             "src/degradation/training/config.py", '("name", "runs_root", "logger",', '("name", "runs_root",',
             "tests/training/test_config.py::test_every_key_the_readme_lets_differ_on_resume_is_ignored[logger=wandb]"),
    Mutation("data.download not allowed to differ on resume",
             "src/degradation/training/config.py", '"data.root", "data.download",', '"data.root",',
             "tests/training/test_config.py::test_every_key_the_readme_lets_differ_on_resume_is_ignored[data.download=false]"),
    Mutation("data.eval_batch_size not allowed to differ on resume",
             "src/degradation/training/config.py", '"data.download", "data.eval_batch_size",', '"data.download",',
             "tests/training/test_config.py::test_every_key_the_readme_lets_differ_on_resume_is_ignored[data.eval_batch_size=500]"),
    Mutation("trainer.accelerator not allowed to differ on resume",
             "src/degradation/training/config.py", '                "trainer.accelerator", ', '                ',
             "tests/training/test_config.py::test_every_key_the_readme_lets_differ_on_resume_is_ignored[trainer.accelerator=cpu]"),
    Mutation("trainer.devices not allowed to differ on resume",
             "src/degradation/training/config.py", '"trainer.accelerator", "trainer.devices", ', '"trainer.accelerator", ',
             "tests/training/test_config.py::test_every_key_the_readme_lets_differ_on_resume_is_ignored[trainer.devices=[1]]"),
    Mutation("config.yaml written with unresolved interpolations",
             "src/degradation/training/lifecycle.py", "run_dir.write_config(OmegaConf.to_yaml(cfg, resolve=True))",
             "run_dir.write_config(OmegaConf.to_yaml(cfg, resolve=False))",
             "tests/test_train.py::test_a_few_steps_write_the_documented_run_directory"),
    Mutation("trainer.progress_bar not allowed to differ on resume",
             "src/degradation/training/config.py", '"trainer.devices", "trainer.progress_bar", ', '"trainer.devices", ',
             "tests/training/test_config.py::test_every_key_the_readme_lets_differ_on_resume_is_ignored[trainer.progress_bar=true]"),
    Mutation("metrics.csv logs 7x the learning rate",
             "src/degradation/training/module.py", "lr=self.schedule.lr_at(step - 1))", "lr=7 * self.schedule.lr_at(step - 1))",
             "tests/test_train.py::test_a_few_steps_write_the_documented_run_directory"),
    Mutation("summary.json loses a documented key",
             "src/degradation/training/summary.py", '        "max_steps": cfg.trainer.max_steps,\n', "",
             "tests/test_train.py::test_a_few_steps_write_the_documented_run_directory"),
    # --- README promises (tests/test_promises.py) -----------------------------------------------------------
    Mutation("checkpoints loaded with pickled code allowed",
             "src/degradation/training/checkpoint_io.py", "map_location=map_location, weights_only=True)",
             "map_location=map_location, weights_only=False)",
             "tests/test_promises.py::test_checkpoints_load_weights_only_and_refuse_pickled_code"),
    Mutation("a dry run leaves empty run folders behind",
             "src/degradation/training/lifecycle.py",
             '    log.info("dry run: would %s %s", action, run_dir.path)\n    run_dir.discard_if_empty(runs_root=Path(cfg.runs_root))\n',
             '    log.info("dry run: would %s %s", action, run_dir.path)\n',
             "tests/test_promises.py::test_a_dry_run_says_what_it_would_do_and_writes_nothing"),
    Mutation("eval_every=null evaluates every other epoch",
             "src/degradation/training/build.py", "val_check_interval=settings.eval_every or datamodule.steps_per_epoch,",
             "val_check_interval=settings.eval_every or 2 * datamodule.steps_per_epoch,",
             "tests/test_promises.py::test_eval_every_null_evaluates_once_per_epoch"),
    Mutation("WANDB_MODE in the environment ignored",
             "src/degradation/runs/tracking.py", '    requested = os.environ.get("WANDB_MODE", requested)\n', "",
             "tests/test_promises.py::test_wandb_mode_auto_and_the_environment_override[online-disabled-True-disabled]"),
    Mutation("every parallel job on the first GPU",
             "src/degradation/sweeps/gpu_sharing.py", "ids[job_num % len(ids)]", "ids[0]",
             "tests/sweeps/test_gpu_sharing.py::test_parallel_sweep_jobs_are_pinned_to_gpus_round_robin"),
    Mutation("jobs sharing a GPU are not held to their share of its memory",
             "src/degradation/sweeps/gpu_sharing.py", "    if ids and share < 1:\n", "    if False:\n",
             "tests/sweeps/test_gpu_sharing.py::test_jobs_sharing_one_gpu_each_get_their_share_of_its_memory"),
    Mutation("the MPS daemon is never stopped",
             "src/degradation/sweeps/gpu_sharing.py", '            subprocess.run([CONTROL], input="quit\\n",', '            subprocess.run(["true"], input="quit\\n",',
             "tests/sweeps/test_gpu_sharing.py::test_a_joblib_sweep_on_a_gpu_runs_under_its_own_mps_daemon_until_it_ends"),
    Mutation("mps=<not a bool> accepted (and read as on)",
             "src/degradation/training/config.py", '    if "mps" in cfg and not isinstance(cfg.mps, bool):', '    if False:',
             "tests/training/test_config.py::test_bad_values_are_refused_with_one_line_that_names_the_key[launcher=joblib mps=maybe-mps must be true or false, got 'maybe']"),
    Mutation("stopping after a failed start quits whatever daemon the environment names (maybe another's)",
             "src/degradation/sweeps/gpu_sharing.py", 'input="quit\\n", text=True, env={**os.environ, **self.env()}',
             'input="quit\\n", text=True, env=os.environ.copy()',
             "tests/sweeps/test_gpu_sharing.py::test_an_mps_daemon_that_will_not_start_leaves_the_jobs_time_slicing"),
    Mutation("mps=false ignored",
             "src/degradation/sweeps/gpu_sharing.py", '        if not (config.get("mps", False) and shares_a_gpu(config)):\n',
             '        if not shares_a_gpu(config):\n',
             "tests/sweeps/test_gpu_sharing.py::test_no_mps_daemon_when_nothing_shares_a_gpu_or_it_is_turned_off[mps=false]"),
    Mutation("figures take the oldest sweep",
             "src/degradation/runs/results.py", "    return max(candidates, key=last_written)\n", "    return min(candidates, key=last_written)\n",
             "tests/test_promises.py::test_figures_take_the_sweep_with_the_newest_result_by_default"),
    Mutation("make sweep-cifar drops SEEDS",
             "Makefile", "$(if $(SEEDS),seed=$(SEEDS)) ", "",
             "tests/test_promises.py::test_make_maps_its_sweep_variables_to_overrides"),
    Mutation("a sweep with a failed run exits 0",
             "src/degradation/sweeps/table.py", "            sys.exit(1)  # a scheduler", "            pass  # a scheduler",
             "tests/test_promises.py::test_a_sweep_with_a_failed_run_exits_1_and_its_rerun_retries_only_that_run"),
    Mutation("a failed run is kept, not retried",
             "src/degradation/runs/rundir.py", "FINISHED = (COMPLETED, DIVERGED)", "FINISHED = (COMPLETED, DIVERGED, FAILED)",
             "tests/test_promises.py::test_a_sweep_with_a_failed_run_exits_1_and_its_rerun_retries_only_that_run"),
    Mutation("Table 6 training error from the test curve",
             "src/degradation/report/figures.py",
             "            train = np.array([r.final_train_err for r in runs if r.final_train_err is not None], dtype=float)\n",
             "            train = np.array([r.final_test_err for r in runs if r.final_test_err is not None], dtype=float)\n",
             "tests/report/test_figures.py::test_table6_gives_the_training_error_and_counts_diverged_runs"),
    Mutation("Table 6 does not count diverged runs",
             "src/degradation/report/figures.py", '"diverged": sum(r.diverged_at is not None for r in runs),', '"diverged": 0,',
             "tests/report/test_figures.py::test_table6_gives_the_training_error_and_counts_diverged_runs"),
    Mutation("the lock heartbeat is never refreshed",
             "src/degradation/training/callbacks.py", "        if now - self.last >= self.every_s:\n", "        if False:\n",
             "tests/test_promises.py::test_the_lock_heartbeat_is_refreshed_while_training"),
    Mutation("a run trained elsewhere is reported as failed",
             "src/degradation/sweeps/table.py", "        if status in (RUNNING, NOT_RUN) and RunLock(run.path).live_holder():\n",
             "        if False:\n",
             "tests/test_promises.py::test_a_run_another_live_process_trains_shows_as_elsewhere_not_failed"),
    Mutation("W&B failing offline too stops the run",
             "src/degradation/runs/tracking.py",
             '    except Exception as error:\n        log.warning("W&B offline failed too',
             '    except ZeroDivisionError as error:\n        log.warning("W&B offline failed too',
             "tests/test_promises.py::test_wandb_failing_offline_too_leaves_the_run_with_metrics_csv_only"),
    Mutation("progress lines only every other log_every",
             "src/degradation/training/progress.py", "        if step % self.every and now", "        if step % (2 * self.every) and now",
             "tests/test_promises.py::test_without_a_terminal_progress_is_a_line_every_log_every_steps"),
    Mutation("W&B runs lose their arch/depth tags",
             "src/degradation/runs/tracking.py", 'tags=[cfg.model.arch, f"depth-{cfg.model.depth}", *settings.tags],',
             "tags=[*settings.tags],",
             "tests/sweeps/test_sweep.py::test_wandb_offline_writes_one_run_per_job_with_group_name_and_config"),
    Mutation("Figure 6 written on a fitted axis by default",
             "src/degradation/report/figures.py", 'parser.add_argument("--ylim", type=parse_ylim, default="paper",',
             'parser.add_argument("--ylim", type=parse_ylim, default="auto",',
             "tests/report/test_figures.py::test_the_written_fig6_is_on_the_papers_axis_or_fitted_to_the_data_with_ylim_auto"),
    Mutation("the paper's axis kept when nets end above it (they vanish)",
             "src/degradation/report/figures.py", "        return fitted_ylim(sweep), \"axis fitted to the data", "        return PAPER_YLIM, \"axis fitted to the data",
             "tests/report/test_figures.py::test_the_paper_axis_gives_way_to_one_that_shows_every_net_and_says_so"),
    Mutation("an empty Figure 7 written when no run has responses",
             "src/degradation/report/figures.py", "        return None\n    nets = ", "        pass\n    nets = ",
             "tests/report/test_figures.py::test_write_all_writes_every_file_for_a_partial_sweep"),
    Mutation("another sweep's figures overwritten",
             "src/degradation/report/figures.py", "    if recorded is not None and where(recorded) != where(source):", "    if False:",
             "tests/report/test_figures.py::test_figures_of_another_sweep_are_never_overwritten"),
    Mutation("no key for dashed = training, bold = test",
             "src/degradation/report/figures.py", "handles=handles + style_key(ax, sweep.test_subset())", "handles=handles",
             "tests/report/test_figures.py::test_figure6_has_plain_left_resnet_right_with_dashed_train_and_bold_test_curves"),
    Mutation("--ylim 0,20 ignored",
             "src/degradation/report/figures.py", "    return requested, None\n", "    return fitted_ylim(sweep), None\n",
             "tests/report/test_figures.py::test_the_written_fig6_is_on_the_papers_axis_or_fitted_to_the_data_with_ylim_auto"),
    Mutation("the loss is read to the host every step",
             "src/degradation/training/step.py", "        if self.speed.sync_every_step:\n", "        if True:\n",
             "tests/training/test_module.py::test_a_training_step_never_reads_a_tensor_back_to_the_host[eager]"),
    # --- end-of-run work and GPU correctness ----------------------------------------------------------------
    Mutation("responses measured on the compiled network",
             "src/degradation/training/callbacks.py", "        net = eager_copy(pl_module).to(trainer.strategy.root_device)\n",
             "        net = pl_module.net\n",
             "tests/analysis/test_responses.py::test_a_compiled_network_never_traces_the_response_hooks"),
    Mutation("responses measured after fit(), when teardown has moved the network",
             "src/degradation/training/callbacks.py", "    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:\n",
             "    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:\n",
             "tests/analysis/test_responses.py::test_responses_are_written_while_the_trainer_still_holds_the_network"),
    Mutation("a finished run stays in memory until a later garbage collection",
             "src/degradation/training/lifecycle.py", "    gc.collect()\n", "",
             "tests/test_train.py::test_a_run_frees_its_network_when_it_returns"),
    Mutation("speed.channels_last forced off",
             "src/degradation/training/speed.py", "        if self.channels_last:\n            net.to(", "        if False:\n            net.to(",
             "tests/training/test_speed.py::test_a_speed_switch_is_applied_and_agrees_with_the_fp32_path[channels_last]"),
    Mutation("speed.fused_sgd forced off",
             "src/degradation/training/speed.py", "fused=self.fused_sgd or None)", "fused=None)",
             "tests/training/test_speed.py::test_a_speed_switch_is_applied_and_agrees_with_the_fp32_path[fused_sgd]"),
    Mutation("speed.cudnn_benchmark forced off",
             "src/degradation/training/build.py", "        benchmark=speed.cudnn_benchmark,\n", "        benchmark=False,\n",
             "tests/training/test_speed.py::test_a_speed_switch_is_applied_and_agrees_with_the_fp32_path[cudnn_benchmark]"),
    Mutation("bf16 forced off (trainer.precision ignored)",
             "src/degradation/training/build.py", "        precision=precision_of(cfg),\n", '        precision="32-true",\n',
             "tests/training/test_speed.py::test_a_speed_switch_is_applied_and_agrees_with_the_fp32_path[bf16-mixed]"),
    Mutation("speed.compile forced off",
             "src/degradation/training/speed.py", "        if self.compile:\n", "        if False:\n",
             "tests/training/test_speed.py::test_the_fast_preset_on_a_cpu_compiles_uses_bf16_only_with_bf16_units_and_agrees_with_the_default_path"),
    Mutation("the whole step's learning rate never leaves its first value (no refill at a milestone)",
             "src/degradation/training/whole_step.py", "        self.lr.fill_(lr)\n", "        self.lr.fill_(self.lr.item() or lr)\n",
             "tests/training/test_speed.py::test_the_whole_step_path_computes_what_the_eager_fused_sgd_path_computes"),
    Mutation("the whole step compiles the partial last batch (a recompile every epoch)",
             "src/degradation/training/whole_step.py", "            with uncompiled():\n                return self.compute(images, labels)\n",
             "            return self.compute(images, labels)\n",
             "tests/training/test_speed.py::test_a_compiled_whole_step_compiles_once_for_partial_batches_and_evaluations"),
    Mutation("evaluation runs the compiled network (a recompile for eval mode and the eval batch)",
             "src/degradation/training/whole_step.py", "        with uncompiled(), self.autocast():\n", "        with self.autocast():\n",
             "tests/training/test_speed.py::test_a_compiled_whole_step_compiles_once_for_partial_batches_and_evaluations"),
    Mutation("an epoch made in chunks gives later chunks the first chunk's crops",
             "src/degradation/data/cifar10.py", "                chunk = crop_and_flip(chunk, offsets[index], flips[index], self.pad)\n",
             "                chunk = crop_and_flip(chunk, offsets[order[: len(index)]], flips[index], self.pad)\n",
             "tests/data/test_cifar10.py::test_an_epoch_made_at_once_in_chunks_gives_each_batch_its_own_samples_augmentation"),
    Mutation("the tally replaces its sums instead of adding in place (a captured graph would add elsewhere)",
             "src/degradation/training/step.py", "        self.sums.add_(update)\n", "        self.sums = self.sums + update\n",
             "tests/training/test_module.py::test_tally_reads_mean_loss_and_percent_error_then_resets"),
    Mutation("speed.tf32 ignored",
             "src/degradation/training/precision.py", "    torch.backends.cudnn.allow_tf32 = enabled\n",
             "    torch.backends.cudnn.allow_tf32 = False\n",
             "tests/training/test_speed.py::test_a_speed_switch_is_applied_and_agrees_with_the_fp32_path[tf32]"),
    # --- one home per concept (issue 13) ---------------------------------------------------------------
    Mutation("reading a sweep loads torch",
             "src/degradation/runs/results.py", "import numpy as np\n", "import numpy as np\nimport torch  # noqa: F401\n",
             "tests/runs/test_rundir.py::test_reading_runs_and_drawing_figures_loads_no_torch"),
    Mutation("the CIFAR and the ImageNet-style ResNet-50 share a run directory",
             "src/degradation/runs/rundir.py", "    return name if family == PAPER_FAMILY else f\"{family}-{name}\"\n",
             "    return name\n",
             "tests/test_train.py::test_the_cifar_and_the_imagenet_style_resnet_50_never_share_a_run_directory"),
    Mutation("the wheel ships without its configs",
             "pyproject.toml", '"degradation.conf" = ["*.yaml", "*/*.yaml"]\n', "",
             "tests/test_packaging.py::test_an_installed_package_finds_its_configs_from_any_folder[wheel]"),
    Mutation("progress lines show the previous row's training error",
             "src/degradation/training/module.py", "        self.end_of_step(self.global_step)  # global_step", "        pass  # global_step",
             "tests/training/test_progress.py::test_a_run_prints_its_directory_first_then_progress_with_the_rows_errors_and_no_lightning_banners"),
    Mutation("Lightning's banners and adverts shown",
             "src/degradation/cli.py", "    quiet_lightning()\n", "",
             "tests/training/test_progress.py::test_a_run_prints_its_directory_first_then_progress_with_the_rows_errors_and_no_lightning_banners"),
    Mutation("a sweep checks each job only when it reaches it",
             "src/degradation/sweeps/table.py", "            plan, notes = plan_sweep(config)\n", "            plan, notes = [], []\n",
             "tests/sweeps/test_check.py::test_a_bad_job_anywhere_in_the_grid_stops_the_sweep_before_any_job_trains"),
    Mutation("a dry run sweep writes multirun.yaml and job folders",
             "src/degradation/sweeps/table.py", "            sys.exit(0)  # before Hydra's sweeper", "            pass  # before Hydra's sweeper",
             "tests/sweeps/test_check.py::test_a_dry_run_writes_nothing_and_ends_with_its_plan"),
    Mutation("the config's types are not checked (no schemas registered)",
             "src/degradation/training/config.py", "\n\nregister_schemas()\n", "\n",
             "tests/reliability/test_bad_input.py::test_a_bad_config_value_ends_with_one_line_and_writes_nothing[nesterov not a bool]"),
    Mutation("model.init_mode=bogus ends in a traceback",
             "src/degradation/nets/registry.py",
             "    shortcut: str = rule(*one_of(*SHORTCUTS))\n    init_mode: str = rule(*one_of(*INIT_MODES))\n",
             "    shortcut: str = rule(*one_of(*SHORTCUTS))\n    init_mode: str = MISSING\n",
             "tests/reliability/test_bad_input.py::test_a_bad_config_value_ends_with_one_line_and_writes_nothing[unknown init mode]"),
    Mutation("data.num_classes=0 accepted",
             "src/degradation/schema.py", "    num_classes: int = rule(*positive_int)\n", "    num_classes: int = MISSING\n",
             "tests/reliability/test_bad_input.py::test_a_bad_config_value_ends_with_one_line_and_writes_nothing[no classes]"),
    Mutation("a run recorded with another family's keys is refused on resume",
             "src/degradation/training/config.py", "        elif ABSENT in (before, after) and ADDED_KEYS.get(path, ABSENT) in (before, after):\n",
             "        elif before is ABSENT and ADDED_KEYS.get(path, ABSENT) == after:\n",
             "tests/training/test_config.py::test_runs_recorded_with_another_familys_keys_still_match_the_same_command"),
    # --- the layout (issue 22) --------------------------------------------------------------------------
    Mutation("an analysis imports training (an upward import)",
             "src/degradation/analysis/responses.py", "from degradation.runs.checkpoints import saved_network\n",
             "from degradation.runs.checkpoints import saved_network\nfrom degradation.training import module  # noqa: F401\n",
             "tests/test_layers.py::test_imports_only_run_downwards"),
    # --- the GPUs, Macs and clusters where users train (issue 21) -----------------------------------------
    Mutation("MPS: the daemon started with GPUs named by index, the jobs keep physical ids (issue 21)",
             "src/degradation/sweeps/gpu_sharing.py", "        name_gpus_by_uuid()  # the daemon and the jobs", "        pass  # the daemon and the jobs",
             "tests/sweeps/test_gpu_sharing.py::test_the_daemon_and_the_jobs_name_the_gpus_by_uuid"),
    Mutation("MPS started although every job has a GPU of its own (issue 21)",
             "src/degradation/sweeps/gpu_sharing.py", "    return not config.trainer.spread_gpus or jobs > gpu_count()\n", "    return True\n",
             "tests/sweeps/test_gpu_sharing.py::test_no_mps_daemon_when_nothing_shares_a_gpu_or_it_is_turned_off[a-gpu-per-job]"),
    Mutation("the bench throws its timings away when the MPS daemon will not start (issue 21)",
             "src/degradation/bench/measure.py", "    except (OSError, subprocess.SubprocessError) as error:\n        with contextlib",
             "    except ZeroDivisionError as error:\n        with contextlib",
             "tests/bench/test_measure.py::test_an_mps_daemon_that_will_not_start_is_a_row_and_the_timings_before_it_are_kept"),
    Mutation("a checkpoint loads onto the device that saved it (issue 21)",
             "src/degradation/training/checkpoint_io.py", 'def load_checkpoint(self, path, map_location="cpu",', "def load_checkpoint(self, path, map_location=None,",
             "tests/training/test_resume.py::test_a_checkpoint_saved_on_another_device_resumes_here_to_the_same_metrics"),
    Mutation("the epoch's order drawn on the data's device (another stream on a GPU) (issue 21)",
             "src/degradation/data/cifar10.py", "        order = torch.randperm(n, generator=generator)\n",
             "        order = torch.randperm(n, generator=generator, device=self.split.images.device)\n",
             "tests/data/test_cifar10.py::test_the_epoch_plan_is_drawn_on_the_cpu_whatever_device_holds_the_data"),
    Mutation("the CUDA-graph warning decided in configure_model, before the module is on its device (issue 21)",
             "src/degradation/training/module.py", "        self.speed.apply_to_net(self.net)\n",
             "        self.speed.apply_to_net(self.net)\n        if self.speed.cuda_graphs and self.device.type != 'cuda':\n"
             "            __import__('logging').getLogger(__name__).warning('speed.cuda_graphs needs a CUDA device')\n",
             "tests/training/test_whole_step.py::test_the_warning_comes_after_lightning_has_moved_the_module_to_its_device"),
    Mutation("off CUDA the whole step runs without a graph silently (issue 21)",
             "src/degradation/training/whole_step.py", "        if not self.use_graph:\n            log.warning(", "        if False:\n            log.warning(",
             "tests/training/test_whole_step.py::test_off_cuda_the_whole_step_says_once_that_it_runs_without_a_graph"),
    Mutation("a new stream for every warm-up (a cuBLAS workspace each, for the process's life) (issue 21)",
             "src/degradation/training/whole_step.py",
             "    if device not in SIDE_STREAMS:\n        SIDE_STREAMS[device] = torch.cuda.Stream(device)\n    return SIDE_STREAMS[device]\n",
             "    return torch.cuda.Stream(device)\n",
             "tests/training/test_whole_step.py::test_every_warm_up_and_capture_of_a_process_runs_on_one_side_stream_per_device"),
    Mutation("the graph captured on another stream than its warm-up's (issue 21)",
             "src/degradation/training/whole_step.py", 'torch.cuda.graph(graph, stream=side_stream(device), capture_error_mode=',
             'torch.cuda.graph(graph, capture_error_mode=',
             "tests/training/test_whole_step.py::test_every_warm_up_and_capture_of_a_process_runs_on_one_side_stream_per_device"),
    Mutation("a released run keeps its cuBLAS workspaces (issue 21)",
             "src/degradation/training/lifecycle.py", "        torch._C._cuda_clearCublasWorkspaces()\n", "",
             "tests/training/test_whole_step.py::test_a_run_that_releases_the_gpu_lets_go_of_the_cublas_workspaces"),
    Mutation("the warm-up's compilation counted as capture time (issue 21)",
             "src/degradation/training/whole_step.py", "        capture_started = time.perf_counter()\n", "        capture_started = self.started\n",
             "tests/training/test_whole_step.py::test_the_warm_up_and_the_capture_are_timed_apart"),
    Mutation("the training error logged to Lightning's bar as a device tensor (a host read per step) (issue 21)",
             "src/degradation/training/module.py", "            self.stop_if_diverged(train_loss=loss)\n",
             "            self.stop_if_diverged(train_loss=loss)\n            self.log('train_err', error, prog_bar=True, logger=False)\n",
             "tests/training/test_module.py::test_a_training_step_never_reads_a_tensor_back_to_the_host[progress-bar]"),
    Mutation("trainer.devices=2 starts DDP silently (issue 21)",
             "src/degradation/schema.py", "        return value == 1\n", "        return value >= 1\n",
             "tests/training/test_config.py::test_more_than_one_device_is_refused_with_one_line_that_points_to_a_joblib_sweep[2-2]"),
    Mutation("trainer.devices=[k] of a GPU run stops its resume on the CPU (issue 21)",
             "src/degradation/training/build.py", 'devices=settings.devices if pick_device(settings.accelerator).type == "cuda" else 1,',
             "devices=settings.devices,",
             "tests/training/test_resume.py::test_a_checkpoint_saved_on_another_device_resumes_here_to_the_same_metrics"),
    Mutation("MIG instances taken for the GPUs nvidia-smi lists (issue 21)",
             "src/degradation/sweeps/gpu_sharing.py", "    if gpus is None or mig_enabled(gpus):\n", "    if gpus is None:\n",
             "tests/sweeps/test_gpu_sharing.py::test_mig_instances_take_turns_without_mps"),
    Mutation("GPU indices of mixed kinds read in bus order while CUDA reads them fastest first (issue 21)",
             "src/degradation/sweeps/gpu_sharing.py", 'if len({gpu["name"] for gpu in gpus}) > 1 and', 'if False and',
             "tests/sweeps/test_gpu_sharing.py::test_gpus_named_by_index_whose_uuids_cannot_be_known_take_turns_without_mps[mixed kinds]"),
    Mutation("the bench never releases the device: eager rows after dynamo's recompile limit (issue 21)",
             "src/degradation/bench/measure.py", "    release_device_memory()\n    ran = [", "    ran = [",
             "tests/bench/test_measure.py::test_every_network_is_measured_on_the_path_it_asks_for_however_many_came_before"),
    Mutation("Figure 7's responses accumulated in float64 on the device (none on Apple's MPS) (issue 21)",
             "src/degradation/analysis/responses.py", "            values = output.detach().float()\n", "            values = output.detach().double()\n",
             "tests/analysis/test_responses.py::test_responses_never_make_a_float64_tensor"),
    # --- SLURM (issue 23, docs/sweeps.md#slurm): against the real one-node cluster of tests/slurm/cluster.sh ----------
    Mutation("a job SLURM leaves running after a preemption signal is not requeued (issue 23)",
             "src/degradation/sweeps/slurm.py", '    if state != "RUNNING":\n', "    if True:\n",
             "tests/slurm/test_slurm_sweeps.py::test_jobs_preempted_three_ways_are_requeued_and_end_as_uninterrupted_runs"),
    Mutation("SIGUSR2 (submitit's time-limit signal) stops the run mid-step, without a checkpoint (issue 23)",
             "src/degradation/training/callbacks.py", "(signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)", "(signal.SIGTERM, signal.SIGUSR1)",
             "tests/slurm/test_slurm_sweeps.py::test_jobs_preempted_three_ways_are_requeued_and_end_as_uninterrupted_runs"),
    Mutation("after the fit, a signal no longer reaches submitit's handler (issue 23)",
             "src/degradation/training/callbacks.py", "            return self.pass_on(signum, frame)\n", "            return None\n",
             "tests/slurm/test_slurm_sweeps.py::test_jobs_preempted_three_ways_are_requeued_and_end_as_uninterrupted_runs"),
    Mutation("the lock is not released when a job is cancelled (issue 23)",
             "src/degradation/training/lifecycle.py", "    finally:\n        lock.release()\n", "    finally:\n        pass\n",
             "tests/slurm/test_slurm_sweeps.py::test_a_cancelled_job_is_reported_its_lock_released_and_the_rerun_resumes_it"),
    Mutation("a job that ends without a result stops the sweep with a traceback (issue 23)",
             "src/degradation/sweeps/slurm.py", "    except (UncompletedJobError, FailedJobError):\n        returned",
             "    except ZeroDivisionError:\n        returned",
             "tests/slurm/test_slurm_sweeps.py::test_a_cancelled_job_is_reported_its_lock_released_and_the_rerun_resumes_it"),
    Mutation("a rerun queues the finished runs again (issue 23)",
             "src/degradation/sweeps/slurm.py", '    return planned_action(cfg, run_dir) in ("train", "resume")\n', "    return True\n",
             "tests/slurm/test_slurm_sweeps.py::test_make_sweep_cifar_on_slurm_ends_as_the_same_grid_trained_here"),
    Mutation("sbatch's refusal is a traceback (issue 23)",
             "src/degradation/sweeps/slurm.py", "    except (FailedJobError, subprocess.CalledProcessError, OSError) as refused:",
             "    except ZeroDivisionError as refused:",
             "tests/slurm/test_slurm_sweeps.py::test_a_gpu_request_on_a_cluster_without_gpus_is_one_error_line"),
    Mutation("a run that fails inside a SLURM job leaves no trace in the table (issue 23)",
             "src/degradation/cli.py", '        if in_sweep and os.environ.get("SUBMITIT_EXECUTOR"):', "        if False:",
             "tests/slurm/test_slurm_sweeps.py::test_a_job_that_fails_on_the_cluster_is_reported_with_its_error_and_log"),
    Mutation("two sweeps on one cluster train a run twice (no lock) (issue 23)",
             "src/degradation/training/lifecycle.py", "    lock.acquire()  # two processes never train one run directory\n",
             "    pass\n",
             "tests/slurm/test_slurm_sweeps.py::test_two_sweeps_submitted_at_once_train_each_run_once"),
    Mutation("a job that never started is left out of the sweep table (issue 23)",
             "src/degradation/sweeps/table.py", "    runs.update({path: RunDir(path) for path in planned if path not in runs})\n", "",
             "tests/sweeps/test_table.py::test_every_planned_run_is_in_the_table_and_one_that_never_started_counts_as_failed"),
    Mutation("a run resumed from an epoch's last step logs the next epoch's number (found by the SLURM tests; issue 23)",
             "src/degradation/training/module.py",
             '        metrics["epoch"] = max(self.global_step - 1, 0) // self.trainer.num_training_batches\n',
             '        metrics["epoch"] = self.current_epoch\n',
             "tests/reliability/test_preemption.py::test_a_preempted_run_checkpoints_where_it_stopped_and_resumes_from_there[TERM-at-an-epochs-last-step]"),
    Mutation("a planned run that a live process holds counts as failed (issue 23)",
             "src/degradation/sweeps/table.py", "        if status in (RUNNING, NOT_RUN) and RunLock", "        if status == RUNNING and RunLock",
             "tests/reliability/test_concurrency.py::test_a_run_locked_by_a_live_process_is_skipped_by_a_sweep_and_refused_alone"),
    Mutation("a requeued job waits 15 minutes for the lock of its own earlier start (issue 23)",
             "src/degradation/runs/lock.py", '        return False  # an earlier start of this requeued job\n', "        pass\n",
             "tests/runs/test_lock.py::test_a_requeued_slurm_job_takes_over_the_lock_of_its_earlier_start_at_once"),
    # --- the fast CPU path and the CPU sweep (issue 24, docs/speed-and-gpu.md) ---------------------------------
    Mutation("trainer.precision=auto picks bf16 on a CPU without bf16 units (issue 24)",
             "src/degradation/training/precision.py",
             '        chosen = "bf16-mixed" if has_fast_bf16(device) else "32-true"\n',
             '        chosen = "bf16-mixed"\n',
             "tests/training/test_precision.py::test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_units_and_says_so_once_where_not[none-32-true-1]"),
    Mutation("AVX-512 BF16 is not counted as bf16 units (issue 24)",
             "src/degradation/training/precision.py",
             'CPU_BF16_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"))',
             'CPU_BF16_FLAGS = (("amx_bf16", "AMX"),)',
             "tests/training/test_precision.py::test_the_cpus_bf16_units_are_read_from_its_flags[fpu avx2 avx512f avx512_bf16-AVX-512 BF16]"),
    Mutation("speed=fast runs bf16 on a CPU that emulates it (issue 24)",
             "conf/speed/fast.yaml", "  precision: auto ", "  precision: bf16-mixed ",
             "tests/training/test_speed.py::test_the_fast_preset_on_a_cpu_compiles_uses_bf16_only_with_bf16_units_and_agrees_with_the_default_path"),
    Mutation("summary.json does not record the precision asked for (issue 24)",
             "src/degradation/training/precision.py", '        "precision_asked": asked,\n', "",
             "tests/test_train.py::test_a_few_steps_write_the_documented_run_directory"),
    Mutation("a linear warm-up stays at warmup_lr (issue 24)",
             "src/degradation/training/module.py", '            if self.warmup_shape == "linear":\n',
             '            if False:\n',
             "tests/training/test_module.py::test_a_linear_warmup_rises_from_warmup_lr_to_the_base_lr_then_follows_the_milestones"),
    Mutation("optim.warmup_shape does not reach the module (issue 24)",
             "src/degradation/training/module.py", '            warmup_shape=optim.get("warmup_shape", "constant"),',
             '            warmup_shape="constant",',
             "tests/training/test_module.py::test_the_warmup_shape_reaches_the_module_from_the_config"),
    Mutation("data.test_size is ignored: every evaluation takes the whole test set (issue 24)",
             "src/degradation/data/cifar10.py", "        self.test_split = first_images(test, self.test_size)\n",
             "        self.test_split = test\n",
             "tests/data/test_cifar10.py::test_evaluation_runs_on_the_first_test_size_test_images[7-7]"),
    Mutation("figures do not say their test errors come from a subset (issue 24)",
             "src/degradation/report/figures.py", '    return f"test error\\n({test_subset})" if test_subset else "test error"',
             '    return "test error"',
             "tests/report/test_figures.py::test_test_errors_on_a_test_subset_say_so_in_every_figure_legend_title_and_table"),
    # --- why plain nets degrade: the four analyses (issue 25, docs/analyses.md) --------------------------------
    Mutation("the recorded gradient norm is not the gradient's (issue 25)",
             "src/degradation/analysis/gradients.py",
             "    grads = torch.stack([torch.linalg.vector_norm(w.grad.float()) for w in weights])\n",
             "    grads = torch.stack([torch.linalg.vector_norm(w.grad.float()) ** 2 for w in weights])\n",
             "tests/analysis/test_gradients.py::test_a_run_records_the_gradient_norms_of_the_step_just_taken"),
    Mutation("gradients recorded off the metrics rows' steps (issue 25)",
             "src/degradation/training/callbacks.py", "        if step % self.every == 0 or step >= trainer.max_steps:\n",
             "        if step % self.every == 1 or step >= trainer.max_steps:\n",
             "tests/analysis/test_gradients.py::test_a_run_records_the_gradient_norms_of_the_step_just_taken"),
    Mutation("gradient rows of a killed attempt are kept on resume (issue 25)",
             "src/degradation/training/lifecycle.py", "    run_dir.drop_gradients_after(step)\n", "",
             "tests/reliability/test_interruption.py::test_a_run_killed_at_any_moment_ends_as_an_uninterrupted_one[kill-metrics:5]"),
    Mutation("the autocorrelation is not normalised by the gradients' energy (issue 25)",
             "src/degradation/analysis/shattering.py", "    energy = centred.square().sum(1).mean()\n",
             "    energy = centred.square().sum()\n",
             "tests/analysis/test_shattering.py::test_a_linear_networks_input_gradients_are_perfectly_correlated"),
    Mutation("shattering's train-mode BN updates the net's running statistics (issue 25)",
             "src/degradation/analysis/shattering.py", '    net = copy.deepcopy(net).train(bn_mode == "train")\n',
             '    net = net.train(bn_mode == "train")\n',
             "tests/analysis/test_shattering.py::test_train_mode_bn_leaves_the_network_and_its_statistics_as_they_were"),
    Mutation("a deleted residual block drops its shortcut too (issue 25)",
             "src/degradation/analysis/lesion.py", "        return F.relu(self.shortcut(x)) if self.residual else x\n",
             "        return torch.zeros_like(self.shortcut(x)) if self.residual else x\n",
             "tests/analysis/test_lesion.py::test_deleting_a_block_whose_residual_branch_is_zero_changes_nothing"),
    Mutation("plain downsampling blocks are deleted as if they were the identity (issue 25)",
             "src/degradation/analysis/lesion.py", "    return block.residual or not downsamples(block)\n",
             "    return True\n",
             "tests/analysis/test_lesion.py::test_plain_downsampling_blocks_cannot_be_deleted_and_are_marked"),
    Mutation("landscape directions not filter-normalized (issue 25)",
             "src/degradation/analysis/landscape.py",
             "        scale = weight.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)\n",
             "        scale = weight.norm() / (d.norm() + 1e-10) * torch.ones(len(weight), device=weight.device)\n",
             "tests/analysis/test_landscape.py::test_filter_normalized_directions_have_the_filters_norms_and_no_bias_or_bn_part"),
    Mutation("landscape directions move biases and BN parameters (issue 25)",
             "src/degradation/analysis/landscape.py", "        if weight.dim() <= 1:\n", "        if weight.dim() < 1:\n",
             "tests/analysis/test_landscape.py::test_filter_normalized_directions_have_the_filters_norms_and_no_bias_or_bn_part"),
    Mutation("the landscape is measured with BN in train mode (issue 25)",
             "src/degradation/analysis/landscape.py", "    net.eval()\n    total = ", "    net.train()\n    total = ",
             "tests/analysis/test_landscape.py::test_the_landscape_at_the_origin_is_the_checkpoints_loss_and_the_weights_are_restored"),
    Mutation("an interrupted landscape starts over (issue 25)",
             "src/degradation/analysis/landscape.py", '            if record["loss"][row] is None:\n',
             "            if True:\n",
             "tests/analysis/test_landscape.py::test_an_interrupted_landscape_continues_where_it_stopped"),
    Mutation("analyses recompute what is already recorded (issue 25)",
             "src/degradation/analysis/command.py", '    return record.get("step", final_step) == final_step\n',
             "    return False\n",
             "tests/analysis/test_analyze.py::test_results_already_computed_are_reused_and_other_settings_recompute"),
    Mutation("analyses at init are not the run's initial weights (issue 25)",
             "src/degradation/analysis/subjects.py", "    torch.manual_seed(subject.seed)\n", "",
             "tests/analysis/test_gradients.py::test_a_run_records_the_gradient_norms_of_the_step_just_taken"),
    Mutation("the responses command measures a fresh net, not the checkpoint's weights",
             "src/degradation/analysis/responses.py", "    net = eager_net(saved.net_args, saved.weights)\n",
             "    net = build_net(**saved.net_args)\n",
             "tests/analysis/test_responses.py::test_the_responses_command_recomputes_what_training_wrote_from_the_last_checkpoint"),
    Mutation("trained analyses look at a fresh net, not the checkpoint's weights (issue 25)",
             "src/degradation/analysis/subjects.py", "    return eager_net(saved.net_args, saved.weights), saved.step\n",
             "    return build_net(**saved.net_args), saved.step\n",
             "tests/analysis/test_analyze.py::test_trained_analyses_look_at_the_runs_final_weights"),
    # --- the documentation ------------------------------------------------------------------------------
    Mutation("a link of the README leads nowhere (a page renamed, the link not)",
             "README.md", "| [docs/analyses.md](docs/analyses.md) |", "| [docs/analyses.md](docs/analysis.md) |",
             "tests/test_docs.py::test_every_link_between_the_repositorys_files_leads_to_one"),
]


def scratch_copy(destination: Path) -> None:
    """The files git tracks, and the untracked ones it does not ignore, as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The package's configs are the top-level conf/ (an editable install maps degradation.conf there): without
    # this link the scratch tree's src/ would take them from the checkout, and a mutation of conf/ would change nothing.
    (destination / "src/degradation/conf").symlink_to(Path("../../conf"), target_is_directory=True)


def apply(mutation: Mutation, tree: Path) -> bool:
    path = tree / mutation.file
    text = path.read_text()
    if text.count(mutation.original) != 1:
        return False
    path.write_text(text.replace(mutation.original, mutation.mutant))
    return True


def run_test(mutation: Mutation, tree: Path) -> subprocess.CompletedProcess:
    """The test in the scratch tree; its src/ comes first on the path, also for the subprocesses it starts."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", mutation.test],
                          cwd=tree, env=env, capture_output=True, text=True)


def verdict(mutation: Mutation) -> str:
    with tempfile.TemporaryDirectory(prefix="mutant-") as scratch:
        tree = Path(scratch)
        scratch_copy(tree)
        if not apply(mutation, tree):
            return "STALE"
        result = run_test(mutation, tree)
        if result.returncode == 0:  # a skipped test (no SLURM cluster here) proves nothing either
            return "SKIPPED" if " skipped" in result.stdout and " passed" not in result.stdout else "SURVIVED"
        return "caught" if " failed" in result.stdout or " error" in result.stdout else f"ERROR (pytest exit {result.returncode})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutants", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only the mutations whose promise or test contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests; run nothing")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or args.only in m.promise or args.only in m.test]
    if not chosen:
        print(f"error: --only: no mutation matches {args.only!r}", file=sys.stderr)
        return 2
    verdicts = []
    for mutation in chosen:
        if args.list:
            print(f"{mutation.promise:<70} {mutation.test}")
            continue
        started = time.perf_counter()
        verdicts.append(verdict(mutation))
        print(f"{verdicts[-1]:<9} {mutation.promise:<70} {time.perf_counter() - started:5.0f} s  {mutation.test}", flush=True)
    if args.list:
        return 0
    caught = verdicts.count("caught")
    print(f"{caught} of {len(verdicts)} mutations caught")
    return 0 if caught == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
