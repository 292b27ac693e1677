"""NN701, NN704, NN705: training loops (scripts, helpers, nested and while loops, notebooks)."""

from __future__ import annotations

import json

import pytest

from nnlint.api import findings, fix_text
from nnlint.catalogue import examples

CODES = ["NN701", "NN704", "NN705"]
HEAD = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def found(text: str) -> list[tuple[str, int]]:
    return [(f.code, f.row) for f in findings(text, select=CODES)]


VALIDATION_HELPER = HEAD + (
    "def evaluate(model, loader):\n"  # 6
    "    model.eval()\n"
    "    with torch.no_grad():\n"
    "        return sum(model(x).sum().item() for x, _ in loader)\n"
    "\n"
    "\n"
    "def fit(model, loader, epochs):\n"  # 12
    "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "    total = 0.0\n"
    "    for epoch in range(epochs):\n"  # 15
    "        for x, y in loader:\n"
    "            opt.zero_grad()\n"
    "            loss = F.mse_loss(model(x), y)\n"
    "            loss.backward()\n"
    "            opt.step()\n"
    "            total += loss\n"  # 21
    "        evaluate(model, loader)\n"  # 22
    "    return total\n"
)


def test_helper_validation_and_running_total() -> None:
    assert found(VALIDATION_HELPER) == [("NN704", 21), ("NN701", 22)]
    message = next(f.message for f in findings(VALIDATION_HELPER, select=["NN701"]))
    assert message == (
        "`model.eval()` (through `evaluate()`) leaves `model` in eval mode when the loop from line 15 trains again "
        "(`loss.backward()` at line 19): dropout and batch norm stay in inference behaviour for the rest of "
        "training; call `model.train()` before the next training step"
    )


def test_fixes_are_exact() -> None:
    fixed = fix_text(VALIDATION_HELPER, select=CODES)
    assert fixed == VALIDATION_HELPER.replace("total += loss\n", "total += loss.item()\n").replace(
        "        evaluate(model, loader)\n", "        evaluate(model, loader)\n        model.train()\n"
    )
    assert found(fixed) == []


NO_ZERO_GRAD = HEAD + (
    "model = nn.Linear(4, 1)\n"  # 6
    "optimizer = torch.optim.Adam(model.parameters())\n"
    "optimizer.zero_grad()\n"
    "step = 0\n"
    "while step < 100:\n"  # 10
    "    loss = model(torch.randn(8, 4)).pow(2).mean()\n"
    "    loss.backward()\n"
    "    optimizer.step()\n"  # 13
    "    step += 1\n"
)


def test_while_loop_without_zero_grad_in_a_script() -> None:
    assert found(NO_ZERO_GRAD) == [("NN705", 13)]
    (finding,) = findings(NO_ZERO_GRAD, select=["NN705"])
    assert "never called in the loop (only before the loop)" in finding.message


METHODS = HEAD + (
    "class Trainer:\n"  # 6
    "    def __init__(self, model):\n"
    "        self.model = model\n"
    "        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "\n"
    "    def validate(self, batch):\n"
    "        self.model.eval()\n"
    "        with torch.no_grad():\n"
    "            return self.model(batch).mean().item()\n"
    "\n"
    "    def fit(self, loader):\n"  # 16
    "        self.model.train()\n"
    "        for i, batch in enumerate(loader):\n"
    "            self.optimizer.zero_grad()\n"
    "            self.model(batch).mean().backward()\n"
    "            self.optimizer.step()\n"
    "            if i % 100 == 0:\n"
    "                self.validate(batch)\n"  # 23
)


def test_method_helper_in_the_batch_loop() -> None:
    assert found(METHODS) == [("NN701", 23)]
    # the fix goes after the last statement of the body (the ``if``)
    fixed = fix_text(METHODS, select=CODES)
    assert fixed == METHODS + "            self.model.train()\n"


QUIET = HEAD + (
    "def accumulate(model, loader, opt, accum=4):\n"
    "    for i, (x, y) in enumerate(loader):\n"
    "        loss = F.mse_loss(model(x), y) / accum\n"
    "        loss.backward()\n"
    "        if (i + 1) % accum == 0:\n"
    "            opt.step()\n"
    "\n"
    "\n"
    "def toggled(model, loader, val, opt):\n"
    "    total, losses = 0.0, []\n"
    "    for epoch in range(3):\n"
    "        model.train()\n"
    "        for x, y in loader:\n"
    "            opt.zero_grad()\n"
    "            loss = F.mse_loss(model(x), y)\n"
    "            loss.backward()\n"
    "            opt.step()\n"
    "            total += loss.item()\n"
    "            losses.append(loss.detach())\n"
    "        model.eval()\n"
    "        with torch.no_grad():\n"
    "            model(val)\n"
    "    model.eval()\n"
    "\n"
    "\n"
    "def teacher_student(student, teacher, loader, opt):\n"
    "    for x, y in loader:\n"
    "        teacher.eval()\n"
    "        opt.zero_grad()\n"
    "        F.mse_loss(student(x), teacher(x)).backward()\n"
    "        opt.step()\n"
    "\n"
    "\n"
    "class Lit:\n"
    "    def training_step(self, batch, i):\n"
    "        self.model.eval()\n"
    "        for x in batch:\n"
    "            loss = self.model(x).sum()\n"
    "            loss.backward()\n"
    "            self.opt.step()\n"
    "\n"
    "\n"
    "def with_accelerate(model, loader, accelerator, optimizer):\n"
    "    total = 0\n"
    "    for x in loader:\n"
    "        loss = model(x).sum()\n"
    "        accelerator.backward(loss)\n"
    "        optimizer.step()\n"
    "        total += loss\n"
    "        model.eval()\n"
    "\n"
    "\n"
    "def summed(model, batches, opt):\n"
    "    for epoch in range(3):\n"
    "        opt.zero_grad()\n"
    "        losses = []\n"
    "        for x in batches:\n"
    "            losses.append(F.mse_loss(model(x), x))\n"
    "        total = sum(losses)\n"
    "        total.backward()\n"
    "        opt.step()\n"
)


def test_quiet_look_alikes() -> None:
    assert found(QUIET) == []


def test_notebook() -> None:
    cells = [
        HEAD.strip(),
        "model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 1))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)",
        "for epoch in range(3):\n"
        "    for x in [torch.randn(2, 4)]:\n"
        "        opt.zero_grad()\n"
        "        model(x).sum().backward()\n"
        "        opt.step()\n"
        "    model.eval()",
    ]
    data = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c.splitlines(True)}
            for c in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    result = findings(json.dumps(data, indent=1) + "\n", filename="train.ipynb", select=CODES)
    assert [(f.code, f.cell, f.display_row(f.row)) for f in result] == [("NN701", 3, 6)]


# -- the rule pages' examples really misbehave ---------------------------------------------------------------


def _modules(code: str):
    from runtime_helpers import module_from_source

    example = examples(code)
    return module_from_source(example.bad, f"{code}_bad_script"), module_from_source(example.fixed, f"{code}_fix")


def _data(torch):
    torch.manual_seed(1)
    return torch.randn(16, 8), torch.randn(16, 1)


def _trained(module, torch, *args):
    torch.manual_seed(0)
    model = module.Model()
    result = module.train(model, *args)
    return model, result


@pytest.mark.torch
def test_nn701_example_trains_without_dropout_after_the_first_epoch() -> None:
    from runtime_helpers import torch

    bad, good = _modules("NN701")
    x, y = _data(torch)
    bad_model, _ = _trained(bad, torch, x, y, x[:4], y[:4])
    good_model, _ = _trained(good, torch, x, y, x[:4], y[:4])
    assert not bad_model.training and good_model.training
    assert not all(torch.equal(a, b) for a, b in zip(bad_model.parameters(), good_model.parameters(), strict=True))


@pytest.mark.torch
def test_nn704_example_keeps_the_graph() -> None:
    from runtime_helpers import torch

    bad, good = _modules("NN704")
    x, y = _data(torch)
    _, bad_total = _trained(bad, torch, x, y)
    _, good_total = _trained(good, torch, x, y)
    assert isinstance(bad_total, torch.Tensor) and bad_total.grad_fn is not None
    assert isinstance(good_total, float)
    assert abs(bad_total.item() - good_total) < 1e-4


@pytest.mark.torch
def test_nn705_example_sums_gradients() -> None:
    from runtime_helpers import torch

    bad, good = _modules("NN705")
    x, y = _data(torch)
    bad_model, _ = _trained(bad, torch, x, y)
    good_model, _ = _trained(good, torch, x, y)
    assert not all(torch.equal(a, b) for a, b in zip(bad_model.parameters(), good_model.parameters(), strict=True))


CLOSURE_UPDATE = HEAD + (
    "def main(model, loader, steps):\n"  # 6
    "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "\n"
    "    def update(x, y):\n"  # 9
    "        opt.zero_grad()\n"
    "        loss = F.mse_loss(model(x), y)\n"
    "        loss.backward()\n"
    "        opt.step()\n"
    "        return loss.item()\n"
    "\n"
    "    for step in range(steps):\n"  # 16
    "        for x, y in loader:\n"
    "            update(x, y)\n"
    "        model.eval()\n"  # 19
    "        if step % 10 == 0:\n"
    "            print(model(x).sum().item())\n"
    "            model.train()\n"
)


def test_a_closure_that_trains_is_followed() -> None:
    """``update()`` defined inside ``main()`` (as in many RL scripts) trains; the eval switch-back is conditional."""
    assert found(CLOSURE_UPDATE) == [("NN701", 19)]
    fixed = CLOSURE_UPDATE.replace("            model.train()\n", "            model.train()\n        model.train()\n")
    assert fix_text(CLOSURE_UPDATE, select=CODES) == fixed
    assert found(fixed) == []
