"""Just enough of torch.cuda's stream and graph API for WholeStep and EvalForward to take their CUDA path on a
CPU: which stream each warm-up and each capture ran on. A fake capture runs its body once (a real one
records without computing, then the first replay computes); a fake replay computes nothing."""

from contextlib import contextmanager

import torch

from degradation.training import whole_step


class FakeStream:
    def wait_stream(self, other) -> None:
        pass


class FakeGraph:
    def replay(self) -> None:
        pass


class FakeCuda:
    def __init__(self, monkeypatch):
        self.made: list[FakeStream] = []  # every stream created
        self.warm_ups: list[FakeStream] = []  # the stream each warm-up ran on
        self.captures: list[FakeStream | None] = []  # the stream each capture was asked to record on
        self.current = FakeStream()
        monkeypatch.setattr(torch.cuda, "Stream", self.new_stream)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: self.current)
        monkeypatch.setattr(torch.cuda, "stream", self.on_stream)
        monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
        monkeypatch.setattr(torch.cuda, "graph", self.capture)
        monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(
            whole_step, "SIDE_STREAMS", {}, raising=False
        )  # this process's streams are fakes from now on

    def new_stream(self, device=None) -> FakeStream:
        self.made.append(FakeStream())
        return self.made[-1]

    @contextmanager
    def on_stream(self, stream: FakeStream):
        self.warm_ups.append(stream)
        yield

    @contextmanager
    def capture(self, graph, pool=None, stream=None, capture_error_mode="global"):
        self.captures.append(stream)
        yield
