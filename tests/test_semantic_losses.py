"""NN404 on the semantic model: probabilities that reach a loss across calls, classes and files."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nnlint.api import lint_project

from conftest import found, module_source

SOFTMAX_NET = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=-1)
"""


def project(tmp_path: Path, files: dict[str, str], select: str = "NN404") -> list[tuple[str, str, int]]:
    run = lint_project({name: textwrap.dedent(text).lstrip() for name, text in files.items()}, tmp_path, [select])
    return [(Path(f.path).relative_to(tmp_path).as_posix(), f.code, f.row) for f in run.findings]


def test_training_script_in_another_file_feeds_the_model_output_to_cross_entropy(tmp_path: Path) -> None:
    script = """
    import torch
    import torch.nn as nn
    from pkg.model import Net

    model = Net()
    criterion = nn.CrossEntropyLoss()
    x, y = torch.randn(4, 8), torch.zeros(4, dtype=torch.long)
    loss = criterion(model(x), y)
    """
    files = {"pkg/__init__.py": "", "pkg/model.py": SOFTMAX_NET, "train.py": script}
    assert project(tmp_path, files) == [("train.py", "NN404", 8)]
    message = (
        lint_project({name: textwrap.dedent(text).lstrip() for name, text in files.items()}, tmp_path, ["NN404"])
        .findings[0]
        .message
    )
    assert "`model(x)` is already softmax output (returned by `Net.forward`)" in message


def test_lightning_training_step_calls_self_whose_forward_ends_with_softmax() -> None:
    source = module_source(
        """
        import lightning


        class Classifier(lightning.LightningModule):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 3)

            def forward(self, x):
                return self.fc(x).softmax(dim=-1)

            def training_step(self, batch, batch_idx):
                x, y = batch
                return F.cross_entropy(self(x), y)
        """
    )
    assert found(source, select=["NN404"]) == [("NN404", 19)]


def test_sequential_ending_in_softmax_and_a_trainer_class_that_is_not_a_module() -> None:
    source = module_source(
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1))

            def forward(self, x):
                return self.layers(x)


        class Trainer:
            def __init__(self, model: Net):
                self.model = model
                self.loss_fn = nn.CrossEntropyLoss()

            def step(self, model: Net, x, y):
                return self.loss_fn(model(x), y)
        """
    )
    assert found(source, select=["NN404"]) == [("NN404", 21)]


def test_exp_of_log_softmax_and_sigmoid_through_a_helper_function() -> None:
    source = module_source(
        """
        def probabilities(logits):
            return torch.exp(F.log_softmax(logits, dim=-1))


        def squash(z):
            out = torch.sigmoid(z)
            return out


        def losses(logits, z, y, t):
            a = F.cross_entropy(probabilities(logits), y)
            b = F.binary_cross_entropy_with_logits(squash(z), t)
            return a + b
        """
    )
    assert found(source, select=["NN404"]) == [("NN404", 16), ("NN404", 17)]


def test_base_forward_calls_a_head_the_subclass_defines() -> None:
    source = module_source(
        """
        class Base(nn.Module):
            def forward(self, x):
                return self.head(self.body(x))


        class Child(Base):
            def __init__(self):
                super().__init__()
                self.body = nn.Linear(8, 8)
                self.fc = nn.Linear(8, 3)

            def head(self, h):
                return F.softmax(self.fc(h), dim=1)


        def train(model: Child, x, y):
            return F.cross_entropy(model(x), y)
        """
    )
    assert found(source, select=["NN404"]) == [("NN404", 22)]


def test_module_level_nested_call() -> None:
    source = module_source("loss = F.cross_entropy(F.softmax(torch.randn(4, 3), dim=1), torch.zeros(4).long())\n")
    assert found(source, select=["NN404"]) == [("NN404", 6)]


def test_softmax_applied_after_the_loss_line_is_not_reported() -> None:
    source = module_source(
        """
        def step(model, x, y):
            out = model(x)
            loss = F.cross_entropy(out, y)
            out = out.softmax(dim=-1)
            return loss, out
        """
    )
    assert found(source, select=["NN404"]) == []


def test_look_alikes_that_are_fine() -> None:
    source = module_source(
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 3)

            def forward(self, x):
                logits = self.fc(x)
                if self.training:
                    return logits
                return logits.softmax(dim=-1)

            def predict(self, x):
                return F.softmax(self.fc(x), dim=-1)


        def train(model: Net, x, y, z):
            a = F.cross_entropy(model(x), y)            # logits in training, probabilities in eval: unknown
            b = F.nll_loss(model.predict(x).log(), y)  # not a loss that applies softmax
            c = F.cross_entropy(z, y)                  # a parameter: unknown
            return a + b + c
        """
    )
    assert found(source, select=["NN404"]) == []
