"""NN301 and NN304 on the semantic model: what a class holds, where it is read, what forward reaches."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nnlint.api import fix_text, lint_project

from conftest import found

TENSORS = """
import torch
import torch.nn as nn


class Table:
    @staticmethod
    def build(n, d):
        table = torch.zeros(n, d)
        return table


def make_scale(d):
    return torch.sqrt(torch.tensor(d))


class A(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.mask = torch.ones(4, 4)  # read in forward
        self.moved = torch.ones(4)  # every use moves it: fine
        self.only_init = torch.arange(4)  # only read in __init__: fine
        self.total = self.only_init.sum()
        self.idx = torch.arange(4)  # an index: CPU indices work on any device
        self.table = Table.build(n, 4)  # a helper returns a tensor
        self.scale = make_scale(4)  # a nested torch expression, through a function
        self.eye = torch.eye(3).cuda()  # moved by hand where it is made
        self.cached = torch.zeros(3)  # replaced when forward runs: fine
        self._build()

    def _build(self):
        self.built = torch.zeros(3)  # a helper called from __init__
        if self.total > 0:
            self.branch = torch.zeros(3)  # in a branch of it

    def reset_state(self):
        self.state = torch.zeros(3)  # another method

    def forward(self, x):
        self.fresh = torch.zeros(3, device=x.device)  # made next to the input: fine
        self.cached = self.cached.to(x.device)
        y = x * self.mask + self.moved.to(x.device) + x[:, self.idx] + self.table + self.scale + self.eye
        return y + self.built + self.branch + self.state + self.fresh + self.cached + self.moved.shape[0]
"""


def test_nn304_reports_tensors_some_use_of_which_breaks_after_to_device() -> None:
    assert found(TENSORS, select=["NN304"]) == [
        ("NN304", 20),
        ("NN304", 25),
        ("NN304", 26),
        ("NN304", 27),
        ("NN304", 32),
        ("NN304", 34),
        ("NN304", 37),
    ]


def test_nn304_says_where_the_tensor_is_read_and_fixes_construction_time_assignments() -> None:
    fixed = fix_text(TENSORS, select=["NN304"])
    assert 'self.register_buffer("built", torch.zeros(3), persistent=False)  # a helper' in fixed
    assert 'self.register_buffer("branch", torch.zeros(3), persistent=False)  # in a branch' in fixed
    assert "        self.state = torch.zeros(3)  # another method" in fixed  # made while running: no fix
    from nnlint.api import findings

    messages = {f.row: f.message for f in findings(TENSORS, select=["NN304"])}
    assert "it is read in `forward` without `.to()`" in messages[20]
    assert "(moved to a device by hand where it is made)" in messages[27]


def project(tmp_path: Path, files: dict[str, str], select: str) -> list[tuple[str, str, int, str]]:
    run = lint_project({name: textwrap.dedent(text).lstrip() for name, text in files.items()}, tmp_path, [select])
    return [(Path(f.path).relative_to(tmp_path).as_posix(), f.code, f.row, f.message) for f in run.findings]


def test_nn304_read_by_a_subclass_in_another_file(tmp_path: Path) -> None:
    base = """
    import torch
    import torch.nn as nn


    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.pe = torch.randn(16, 8)
    """
    child = """
    from pkg.base import Base


    class Child(Base):
        def forward(self, x):
            return x + self.pe
    """
    files = {"pkg/__init__.py": "", "pkg/base.py": base, "pkg/child.py": child}
    ((path, code, row, message),) = project(tmp_path, files, "NN304")
    assert (path, code, row) == ("pkg/base.py", "NN304", 8)
    assert "it is read in `Child.forward` without `.to()`" in message
    files["pkg/child.py"] = child.replace("x + self.pe", "x + self.pe.to(x.device)")
    assert project(tmp_path, files, "NN304") == []


LAYERS = """
import torch.nn as nn


class Base(nn.Module):
    def forward(self, x):
        return self.decode(self.encode(x))

    def encode(self, x):
        return x


class Child(Base):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.blocks = nn.ModuleList([nn.Linear(4, 4)])

    def decode(self, x):
        x = nn.Conv1d(4, 4, 1)(x)  # reached from Base.forward
        seq = nn.Sequential(self.a, *self.blocks)  # wraps registered layers: fine
        return seq(x)


class Stateless(nn.Module):
    def forward(self, x):
        return x * 2


class Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = None

    def forward(self, x):
        if self.proj is None:
            self.proj = nn.Linear(x.shape[-1], 4)  # built once, cached: fine
        if not self.ready:
            self.setup()  # a run-once set-up: fine
        x = self.expand_once(x)
        y = Stateless()(x)  # no parameters, buffers or mode: fine
        return self.proj(y) + nn.Dropout(0.1)(x)  # a mode of its own, always training

    def setup(self):
        self.extra = nn.Linear(2, 2)
        self.ready = True

    def expand_once(self, x):
        if self.expanding:  # the block turns its own flag off: it runs once
            x = nn.Linear(4, 4)(x)  # not reported
            self.expanding = False
        return x

    def helper(self):
        return nn.Linear(2, 2)  # not reached from forward: fine
"""


def test_nn301_follows_forward_through_the_hierarchy_and_skips_what_is_built_once() -> None:
    from nnlint.api import findings

    result = findings(LAYERS, select=["NN301"])
    assert [(f.code, f.row) for f in result] == [("NN301", 20), ("NN301", 42)]
    assert "`Child.decode`, called from `Base.forward`" in result[0].message
    assert "`Lazy.forward`" in result[1].message


def test_nn301_base_forward_in_another_file(tmp_path: Path) -> None:
    base = """
    import torch.nn as nn


    class Base(nn.Module):
        def forward(self, x):
            return self.decode(x)
    """
    child = """
    import torch.nn as nn
    from pkg.base import Base


    class Child(Base):
        def decode(self, x):
            return nn.Conv2d(3, 3, 1)(x)
    """
    files = {"pkg/__init__.py": "", "pkg/base.py": base, "pkg/child.py": child}
    ((path, code, row, message),) = project(tmp_path, files, "NN301")
    assert (path, code, row) == ("pkg/child.py", "NN301", 7)
    assert "`Child.decode`, called from `Base.forward`" in message


CONTAINERS = """
import torch
import torch.nn as nn
from pkg.blocks import Block, make_block


class Net(nn.Module):
    def __init__(self, n=2, deep=True):
        super().__init__()
        self._build(n)
        if deep:
            self.heads = [nn.Linear(4, 4), nn.Linear(4, 2)]  # in a branch of __init__
        else:
            self.heads = [nn.Linear(4, 2)]
        self.weights = [nn.Parameter(torch.randn(3)) for _ in range(n)]
        self._register_weights()
        self.acts = [nn.ReLU(), nn.GELU()]  # nothing to register: fine
        self.sizes = [make_size(i) for i in range(n)]  # not modules: fine

    def _build(self, n):
        self.blocks = []
        for i in range(n):
            self.blocks.append(self.make_block(i))  # a method of the class returns a layer
        self.stages = []
        for i in range(n):
            self.stages.append(make_block(i))  # a function in another file returns one
        self.extra = [Block() for _ in range(n)]  # a module class from another file

    def _register_weights(self):
        for i, weight in enumerate(self.weights):
            self.register_parameter(f"w{i}", weight)  # registered by a helper: fine

    def make_block(self, i):
        return nn.Sequential(nn.Linear(4, 4), nn.ReLU())


def make_size(i):
    return i * 2
"""

BLOCKS = """
import torch.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)


def make_block(i):
    return Block()
"""


def test_nn302_containers_filled_by_helpers_branches_and_functions_of_other_files(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": "", "pkg/blocks.py": BLOCKS, "pkg/net.py": CONTAINERS}
    assert [(path, code, row) for path, code, row, _ in project(tmp_path, files, "NN3")] == [
        ("pkg/net.py", "NN302", 11),
        ("pkg/net.py", "NN302", 20),
        ("pkg/net.py", "NN302", 23),
        ("pkg/net.py", "NN302", 26),
    ]


def test_nn302_element_that_is_not_a_module_is_not_reported(tmp_path: Path) -> None:
    blocks = BLOCKS.replace("    return Block()", "    return {'size': i}")
    files = {"pkg/__init__.py": "", "pkg/blocks.py": blocks, "pkg/net.py": CONTAINERS}
    assert [row for _, code, row, _ in project(tmp_path, files, "NN302")] == [11, 20, 26]


TENSOR_LOOK_ALIKES = """
import torch
import torch.nn as nn


def to_device(tensor, like):
    return tensor.to(like.device)


class Loss(nn.Module):
    def __init__(self, margin=0.5, bins=10):
        super().__init__()
        self.margin = torch.tensor(margin)  # 0-dim: mixes with tensors on any device
        self.labels = torch.arange(10)
        self.steps = torch.arange(4)
        self.hist = torch.zeros(bins)  # state updated from itself: state_dict loses it
        self.limit = torch.tensor(3).expand(4)  # no longer 0-dim

    def forward(self, x):
        labels = to_device(self.labels, x)  # moved by a helper
        step = self.steps[0].item()  # converted to a Python number
        self.hist = 0.9 * self.hist + 0.1 * x.detach().sum()
        return (x - self.margin).sum() + labels.sum() + step + (x < self.limit).sum()


class Sampler(nn.Module):
    def __init__(self):
        super().__init__()
        self.prior = torch.ones(3)

    def model(self, x):
        scale = torch.ones(3)  # this class makes its tensors on the default device
        return x * self.prior * scale


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.stride = torch.zeros(3)

    def forward(self, x):
        return x * self.stride

    def _apply(self, fn):
        self = super()._apply(fn)
        self.stride = fn(self.stride)  # moved by hand with the module
        return self
"""


def test_nn304_look_alikes_from_research_code() -> None:
    from nnlint.api import findings

    result = findings(TENSOR_LOOK_ALIKES, select=["NN304"])
    assert [(f.code, f.row) for f in result] == [("NN304", 16), ("NN304", 17)]
    assert "it is updated in `forward` from its own value, and `state_dict` does not save it" in result[0].message
    assert "it is read in `forward` without `.to()`" in result[1].message
