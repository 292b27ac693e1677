"""NN702 (evaluation in training mode) and NN703 (inference builds autograd graphs)."""

from __future__ import annotations

import json

import pytest

from nnlint.api import findings, fix_text

from conftest import found, run_cli

RULES = ["NN702", "NN703"]

NET = """\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 2))

    def forward(self, x):
        return self.body(x)


"""  # 13 lines: the body starts at row 14


def script(body: str) -> str:
    return NET + body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # no_grad evaluation, called from main, never eval(): NN702 at the model call
        (
            "def evaluate(model, x):\n    with torch.no_grad():\n        return model(x).argmax(-1)\n\n\n"
            "def main():\n    model = Net()\n    evaluate(model, torch.randn(4, 8))\n\n\nmain()\n",
            [("NN702", 16)],
        ),
        # predict helper: eval() but no no_grad, called from the script: NN703
        (
            "def predict(model, x):\n    model.eval()\n    return model(x)\n\n\n"
            "net = Net()\nfor _ in range(3):\n    print(predict(net, torch.randn(2, 8)))\n",
            [("NN703", 16)],
        ),
        # both: an evaluate() with neither eval() nor no_grad
        (
            "def evaluate(model, x):\n    return model(x).argmax(-1)\n\n\n"
            "model = Net()\nevaluate(model, torch.randn(2, 8))\n",
            [("NN702", 15), ("NN703", 15)],
        ),
        # model built and loaded in the routine itself, under no_grad: NN702 whoever calls it
        (
            "def predict(path, x):\n    net = Net()\n    net.load_state_dict(torch.load(path))\n"
            "    with torch.no_grad():\n        return net(x)\n",
            [("NN702", 18)],
        ),
        # notebook-style script code under no_grad with a model it built
        ("model = Net()\nwith torch.no_grad():\n    out = model(torch.randn(2, 8))\n", [("NN702", 16)]),
        # script: eval() then a loop of calls without no_grad
        (
            "model = Net()\nmodel.eval()\nfor _ in range(3):\n    out = model(torch.randn(2, 8))\n",
            [("NN703", 17)],
        ),
    ],
)
def test_reported(body: str, expected: list[tuple[str, int]]) -> None:
    assert found(script(body), select=RULES) == expected


@pytest.mark.parametrize(
    "body",
    [
        # the caller switches to eval before calling, and disables gradients
        "def evaluate(model, x):\n    return model(x)\n\n\ndef main():\n    model = Net()\n    model.eval()\n"
        "    with torch.no_grad():\n        evaluate(model, torch.randn(2, 8))\n\n\nmain()\n",
        # eval() and inference_mode inside the routine
        "def evaluate(model, x):\n    model.eval()\n    with torch.inference_mode():\n        return model(x)\n\n\n"
        "evaluate(Net(), torch.randn(2, 8))\n",
        # decorated
        "@torch.no_grad()\ndef predict(model, x):\n    model.eval()\n    return model(x)\n\n\n"
        "predict(Net(), torch.randn(2, 8))\n",
        # no caller in this file: another file may call it with an eval-mode model under no_grad
        "def evaluate(model, x):\n    with torch.no_grad():\n        return model(x)\n",
        # train(mode) with an unknown mode
        "def evaluate(model, x, mode):\n    model.train(mode)\n    with torch.no_grad():\n        return model(x)\n\n\n"
        "evaluate(Net(), torch.randn(2, 8), False)\n",
        # gradients wanted: an adversarial example after eval()
        "def attack(model, x):\n    model.eval()\n    x.requires_grad_(True)\n    model(x).sum().backward()\n"
        "    return x.grad\n\n\nattack(Net(), torch.randn(2, 8))\n",
        # a training step: not evaluation
        "def train_step(model, opt, x):\n    loss = model(x).sum()\n    loss.backward()\n    opt.step()\n\n\n"
        "train_step(Net(), None, torch.randn(2, 8))\n",
        # Lightning-style methods: the framework toggles mode and grad
        "class Lit:\n    def validation_step(self, batch, i):\n        return self.model(batch)\n",
        # a pytest test in a module: not an evaluation
        "def test_shapes():\n    net = Net()\n    assert net(torch.randn(2, 8)).shape == (2, 2)\n",
        # a module's own methods
        "class Head(nn.Module):\n    def predict(self, x):\n"
        "        with torch.no_grad():\n            return self.net(x)\n",
        # a function named like a model is not one
        "def evaluate(x):\n    with torch.no_grad():\n        return encode_net(x)\n\n\n"
        "def encode_net(x):\n    return x\n\n\nevaluate(torch.randn(2))\n",
        # a one-off check at the end of a script
        "model = Net()\nmodel.eval()\nout = model(torch.randn(2, 8))\n",
        # script that hands the model to a trainer before evaluating
        "model = Net()\nfit(model)\nwith torch.no_grad():\n    out = model(torch.randn(2, 8))\n",
    ],
)
def test_quiet(body: str) -> None:
    assert found(script(body), select=RULES) == []


def test_messages_name_the_call_chain() -> None:
    text = script(
        "def evaluate(model, x):\n    with torch.no_grad():\n        return model(x).argmax(-1)\n\n\n"
        "def main():\n    model = Net()\n    evaluate(model, torch.randn(4, 8))\n\n\nmain()\n"
    )
    (finding,) = findings(text, select=RULES)
    assert finding.message == (
        "`evaluate` runs `model` under `torch.no_grad()` but never calls `model.eval()`; "
        "`evaluate` is called from `main` at line 21, `main` is called from module-level code at line 24, "
        "which never calls `.eval()` either: "
        "dropout and batch norm stay in training mode, so its outputs are noisy and wrong"
    )
    text = script(
        "def predict(model, x):\n    model.eval()\n    return model(x)\n\n\n"
        "for _ in range(2):\n    predict(Net(), torch.randn(2, 8))\n"
    )
    (finding,) = findings(text, select=RULES)
    assert finding.message == (
        "`predict` calls `model` after `.eval()` outside `torch.no_grad()`/`torch.inference_mode()`; "
        "`predict` is called from module-level code at line 20, which never disables gradients either: "
        "every forward pass records an autograd graph and keeps its activations, costing memory and time, "
        "and outputs carry `requires_grad`"
    )


def test_notebook(tmp_path) -> None:
    from test_notebooks import notebook

    cells = [NET, "model = Net()\n", "with torch.no_grad():\n    preds = model(torch.randn(2, 8))\n"]
    (tmp_path / "nb.ipynb").write_text(notebook(*cells))
    result = run_cli(
        "check", "--no-cache", "--output-format", "json", "--select", "NN702,NN703", "nb.ipynb", cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert [(item["code"], item["location"]["row"]) for item in json.loads(result.stdout)] == [("NN702", 2)]


@pytest.mark.torch
def test_the_bugs_are_real() -> None:
    """A dropout model in training mode is not deterministic under no_grad; without no_grad outputs keep graphs."""
    import torch

    from runtime_helpers import module_from_source

    net = module_from_source(NET, "eval_routines_net").Net()
    x = torch.randn(4, 8)
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))  # NN702: training mode under no_grad
    net.eval()
    out = net(x)
    assert out.requires_grad and out.grad_fn is not None  # NN703: eval() alone still records a graph
    with torch.inference_mode():
        assert not net(x).requires_grad
        assert torch.equal(net(x), net(x))


PREDICT_LOOP = (
    "def predict(model, loader):\n    model.eval()\n    preds = []\n    # one batch at a time\n"
    "    for x in loader:\n        preds.append(model(x).softmax(-1))\n\n    # all of them\n"
    "    return torch.cat(preds)\n\n\nprint(predict(Net(), [torch.randn(2, 8)]))\n"
)


@pytest.mark.parametrize(
    ("body", "fixed"),
    [
        # returns the prediction: no_grad (inference tensors would break a caller that changes them)
        (
            "def predict(model, x):\n    model.eval()\n    return model(x)\n\n\n"
            "for _ in range(3):\n    print(predict(Net(), torch.randn(2, 8)))\n",
            "def predict(model, x):\n    model.eval()\n    with torch.no_grad():\n        return model(x)\n\n\n"
            "for _ in range(3):\n    print(predict(Net(), torch.randn(2, 8)))\n",
        ),
        # comments and a blank line go into the block; a body that ends with ``return preds``
        (
            PREDICT_LOOP,
            "def predict(model, loader):\n    model.eval()\n    preds = []\n    # one batch at a time\n"
            "    with torch.no_grad():\n        for x in loader:\n            preds.append(model(x).softmax(-1))\n\n"
            "        # all of them\n        return torch.cat(preds)\n\n\nprint(predict(Net(), [torch.randn(2, 8)]))\n",
        ),
        # nested loops, nothing leaves the block: inference_mode
        (
            "def evaluate(model, batches):\n    model.eval()\n    total = 0\n    for batch in batches:\n"
            "        # every row\n        for x in batch:\n            total += model(x).sum().item()\n"
            "    print(total)\n\n\nevaluate(Net(), [[torch.randn(2, 8)]])\n",
            "def evaluate(model, batches):\n    model.eval()\n    total = 0\n    with torch.inference_mode():\n"
            "        for batch in batches:\n            # every row\n            for x in batch:\n"
            "                total += model(x).sum().item()\n        print(total)\n\n\n"
            "evaluate(Net(), [[torch.randn(2, 8)]])\n",
        ),
        # script code: the loop to the end of the script, under no_grad (its names live on)
        (
            "model = Net()\nmodel.eval()\nfor _ in range(3):\n    out = model(torch.randn(2, 8))\n",
            "model = Net()\nmodel.eval()\nwith torch.no_grad():\n    for _ in range(3):\n"
            "        out = model(torch.randn(2, 8))\n",
        ),
    ],
)
def test_fix_wraps_the_evaluation(body: str, fixed: str) -> None:
    assert fix_text(script(body), select=["NN703"]) == script(fixed)
    assert found(script(fixed), select=RULES) == []


def test_fix_adds_the_torch_import() -> None:
    text = (
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n\n\n"
        "def predict(model, x):\n    model.eval()\n    return model(x)\n\n\npredict(Net(), 1)\n"
    )
    assert fix_text(text, select=["NN703"]) == text.replace(
        "from torch import nn\n", "from torch import nn\nimport torch\n"
    ).replace("    return model(x)\n", "    with torch.no_grad():\n        return model(x)\n")


@pytest.mark.parametrize(
    "body",
    [
        # a generator: the block would stay open while the caller runs
        "def predict(model, xs):\n    model.eval()\n    for x in xs:\n        yield model(x)\n\n\n"
        "for p in predict(Net(), [torch.randn(2, 8)]):\n    print(p)\n",
        # a function after the loop in the script
        "model = Net()\nmodel.eval()\nfor _ in range(3):\n    out = model(torch.randn(2, 8))\n\n\n"
        "def later():\n    pass\n",
    ],
)
def test_no_fix(body: str) -> None:
    (finding,) = findings(script(body), select=["NN703"])
    assert finding.fix is None


@pytest.mark.torch
def test_fixed_routine_returns_the_same_values_without_graphs() -> None:
    import torch

    from runtime_helpers import module_from_source

    bad = module_from_source(script(PREDICT_LOOP), "nn703_bad")
    good = module_from_source(fix_text(script(PREDICT_LOOP), select=["NN703"]), "nn703_good")
    net = bad.Net()
    x = [torch.randn(2, 8), torch.randn(3, 8)]
    old, new = bad.predict(net, x), good.predict(net, x)
    assert old.grad_fn is not None
    assert new.grad_fn is None and not new.requires_grad and torch.equal(old.detach(), new)
