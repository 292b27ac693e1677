"""Item 5 of issue 12: every fix keeps the comments on, above and inside the statements it rewrites.

Each case has a comment line above the rewritten statement, a trailing comment on it and comments
inside a multi-line call; the fixed text is compared exactly, and no comment is lost or doubled.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from nnlint.api import fix_text
from nnlint.engine.model import Fix, RemoveStatement, ReplaceStatement, Span
from nnlint.fixes.transform import apply_fixes
from nnlint.rules import get_rule

from conftest import HEADER, run_cli

CASES = [
    pytest.param(
        "NN101",
        False,
        """
        class Model(nn.Module):
            def forward(self, x):
                # regularise
                y = F.dropout(x, p=0.5)  # drop
                z = F.dropout(  # second
                    y,  # input
                    p=0.1,  # rate
                )  # end
                return z
""",
        """
        class Model(nn.Module):
            def forward(self, x):
                # regularise
                y = F.dropout(x, p=0.5, training=self.training)  # drop
                z = F.dropout(  # second
                    y,  # input
                    p=0.1,  # rate
                    training=self.training,
                )  # end
                return z
""",
        id="NN101",
    ),
    pytest.param(
        "NN102",
        True,
        """
        class Model(nn.Module):
            def forward(self, x):
                # regularise
                y = torch.dropout(x, 0.5, True)  # drop
                z = F.dropout(  # second
                    y,  # input
                    0.1,  # rate
                    True,  # always
                )  # end
                return z
""",
        """
        class Model(nn.Module):
            def forward(self, x):
                # regularise
                y = torch.dropout(x, 0.5, self.training)  # drop
                z = F.dropout(  # second
                    y,  # input
                    0.1,  # rate
                    self.training,  # always
                )  # end
                return z
""",
        id="NN102",
    ),
    pytest.param(
        "NN103",
        False,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("mean", torch.zeros(4))
                self.register_buffer("var", torch.ones(4))

            def forward(self, x):
                # normalise
                y = F.batch_norm(x, self.mean, self.var)  # norm
                return F.rrelu(  # act
                    y,  # input
                    0.1,  # lower
                )  # end
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("mean", torch.zeros(4))
                self.register_buffer("var", torch.ones(4))

            def forward(self, x):
                # normalise
                y = F.batch_norm(x, self.mean, self.var, training=self.training)  # norm
                return F.rrelu(  # act
                    y,  # input
                    0.1,  # lower
                    training=self.training,
                )  # end
""",
        id="NN103",
    ),
    pytest.param(
        "NN104",
        False,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.p = 0.1

            def forward(self, q):
                # attend
                a = F.scaled_dot_product_attention(q, q, q, dropout_p=self.p)  # attn
                return F.scaled_dot_product_attention(  # again
                    a, a, a,  # qkv
                    dropout_p=self.p,  # rate
                )  # end
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.p = 0.1

            def forward(self, q):
                # attend
                a = F.scaled_dot_product_attention(q, q, q, dropout_p=self.p if self.training else 0.0)  # attn
                return F.scaled_dot_product_attention(  # again
                    a, a, a,  # qkv
                    dropout_p=self.p if self.training else 0.0,  # rate
                )  # end
""",
        id="NN104",
    ),
    pytest.param(
        "NN201",
        True,
        """
        class Model(nn.Module):
            def __init__(self, d_in=16, d_out=4):
                super().__init__()
                self.act = nn.ReLU()
                # projection
                self.proj_weight = nn.Parameter(  # weight
                    torch.randn(d_out, d_in) * 0.02  # small
                )  # w
                # its bias
                self.proj_bias = nn.Parameter(torch.zeros(d_out))  # b

            def forward(self, x):
                # project
                return F.linear(  # linear
                    x,  # input
                    self.proj_weight,
                    self.proj_bias,  # bias
                )  # out
""",
        """
        class Model(nn.Module):
            def __init__(self, d_in=16, d_out=4):
                super().__init__()
                self.act = nn.ReLU()
                # projection
                # weight
                # small
                self.proj = nn.Linear(d_in, d_out)  # w
                nn.init.normal_(self.proj.weight, std=0.02)
                nn.init.zeros_(self.proj.bias)
                # its bias
                # b

            def forward(self, x):
                # project
                # linear
                # input
                # bias
                return self.proj(x)  # out
""",
        id="NN201",
    ),
    pytest.param(
        "NN202",
        True,
        """
        class Model(nn.Module):
            def __init__(self, channels=8):
                super().__init__()
                self.act = nn.ReLU()
                # kernel
                self.conv_weight = nn.Parameter(torch.randn(channels, 3, 3, 3) * 0.1)  # w
                self.conv_bias = nn.Parameter(  # bias
                    torch.zeros(channels)  # zero
                )  # b

            def forward(self, x):
                # convolve
                y = F.conv2d(  # conv
                    x,  # input
                    self.conv_weight, self.conv_bias,
                    padding=1,  # same
                )  # out
                return y
""",
        """
        class Model(nn.Module):
            def __init__(self, channels=8):
                super().__init__()
                self.act = nn.ReLU()
                # kernel
                self.conv = nn.Conv2d(3, channels, 3, padding=1)  # w
                nn.init.normal_(self.conv.weight, std=0.1)
                nn.init.zeros_(self.conv.bias)
                # bias
                # zero
                # b

            def forward(self, x):
                # convolve
                # conv
                # input
                # same
                y = self.conv(x)  # out
                return y
""",
        id="NN202",
    ),
    pytest.param(
        "NN203",
        True,
        """
        class Model(nn.Module):
            def __init__(self, channels=8):
                super().__init__()
                self.act = nn.ReLU()
                # kernel
                self.up_weight = nn.Parameter(torch.randn(channels, 4, 2, 2) * 0.1)  # w

            def forward(self, x):
                # upsample
                return F.conv_transpose2d(  # up
                    x,  # input
                    self.up_weight,
                    stride=2,  # double
                )  # out
""",
        """
        class Model(nn.Module):
            def __init__(self, channels=8):
                super().__init__()
                self.act = nn.ReLU()
                # kernel
                self.up = nn.ConvTranspose2d(channels, 4, 2, stride=2, bias=False)  # w
                nn.init.normal_(self.up.weight, std=0.1)

            def forward(self, x):
                # upsample
                # up
                # input
                # double
                return self.up(x)  # out
""",
        id="NN203",
    ),
    pytest.param(
        "NN204",
        True,
        """
        class Model(nn.Module):
            def __init__(self, dim=16):
                super().__init__()
                self.act = nn.ReLU()
                # scale
                self.norm_weight = nn.Parameter(torch.ones(dim))  # w
                self.norm_bias = nn.Parameter(torch.zeros(dim))  # b

            def forward(self, x):
                # normalise
                return F.layer_norm(  # norm
                    x, x.shape[-1:],  # input
                    self.norm_weight, self.norm_bias,
                    1e-6,  # eps
                )  # out
""",
        """
        class Model(nn.Module):
            def __init__(self, dim=16):
                super().__init__()
                self.act = nn.ReLU()
                # scale
                self.norm = nn.LayerNorm(dim, eps=1e-6)  # w
                # b

            def forward(self, x):
                # normalise
                # norm
                # input
                # eps
                return self.norm(x)  # out
""",
        id="NN204",
    ),
    pytest.param(
        "NN205",
        True,
        """
        class Model(nn.Module):
            def __init__(self, vocab=32, dim=8):
                super().__init__()
                self.act = nn.ReLU()
                # table
                self.token_weight = nn.Parameter(torch.randn(vocab, dim) * 0.02)  # w

            def forward(self, ids):
                # look up
                return F.embedding(  # embed
                    ids,  # tokens
                    self.token_weight,
                )  # out
""",
        """
        class Model(nn.Module):
            def __init__(self, vocab=32, dim=8):
                super().__init__()
                self.act = nn.ReLU()
                # table
                self.token = nn.Embedding(vocab, dim)  # w
                nn.init.normal_(self.token.weight, std=0.02)

            def forward(self, ids):
                # look up
                # embed
                # tokens
                return self.token(ids)  # out
""",
        id="NN205",
    ),
    pytest.param(
        "NN206",
        True,
        """
        class Model(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.act = nn.ReLU()
                # slope
                self.act_weight = nn.Parameter(torch.full((dim,), 0.25))  # w

            def forward(self, x):
                # activate
                return F.prelu(  # prelu
                    x,  # input
                    self.act_weight,
                )  # out
""",
        """
        class Model(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.act = nn.ReLU()
                # slope
                self.act_2 = nn.PReLU(num_parameters=dim)  # w

            def forward(self, x):
                # activate
                # prelu
                # input
                return self.act_2(x)  # out
""",
        id="NN206",
    ),
    pytest.param(
        "NN301",
        True,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, x):
                # classifier
                head = nn.Linear(  # head
                    8,  # features
                    2,  # classes
                )  # built here
                # classify
                return head(self.fc(x))  # logits
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)
                self.head = nn.Linear(  # head
                    8,  # features
                    2,  # classes
                )

            def forward(self, x):
                # classifier
                # built here
                # classify
                return self.head(self.fc(x))  # logits
""",
        id="NN301",
    ),
    pytest.param(
        "NN301",
        True,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, x):
                # classify
                return nn.Linear(  # head
                    8,  # features
                    2,  # classes
                )(self.fc(x))  # logits
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)
                self.linear = nn.Linear(  # head
                    8,  # features
                    2,  # classes
                )

            def forward(self, x):
                # classify
                return self.linear(self.fc(x))  # logits
""",
        id="NN301b",
    ),
    pytest.param(
        "NN302",
        False,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # layers
                self.blocks = [  # blocks
                    nn.Linear(8, 8),  # first
                    nn.Linear(8, 8),  # second
                ]  # list

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return x
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # layers
                self.blocks = nn.ModuleList([  # blocks
                    nn.Linear(8, 8),  # first
                    nn.Linear(8, 8),  # second
                ])  # list

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return x
""",
        id="NN302",
    ),
    pytest.param(
        "NN303",
        False,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # scales
                self.scales = [nn.Parameter(torch.ones(8)), nn.Parameter(torch.ones(8))]  # list
                self.shifts = {  # dict
                    "a": nn.Parameter(torch.zeros(8)),  # first
                }  # end

            def forward(self, x):
                return x * self.scales[0] * self.scales[1] + self.shifts["a"]
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # scales
                self.scales = nn.ParameterList([nn.Parameter(torch.ones(8)), nn.Parameter(torch.ones(8))])  # list
                self.shifts = nn.ParameterDict({  # dict
                    "a": nn.Parameter(torch.zeros(8)),  # first
                })  # end

            def forward(self, x):
                return x * self.scales[0] * self.scales[1] + self.shifts["a"]
""",
        id="NN303",
    ),
    pytest.param(
        "NN304",
        False,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # mask
                self.mask = torch.ones(3)  # causal
                self.bias = torch.tril(  # lower
                    torch.ones(3, 3)  # square
                )  # triangle

            def forward(self, x):
                return x * self.mask + self.bias
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # mask
                self.register_buffer("mask", torch.ones(3), persistent=False)  # causal
                self.register_buffer("bias", torch.tril(  # lower
                    torch.ones(3, 3)  # square
                ), persistent=False)  # triangle

            def forward(self, x):
                return x * self.mask + self.bias
""",
        id="NN304",
    ),
    pytest.param(
        "NN305",
        False,
        """
        class Model(nn.Module):
            def __init__(self):
                # a head
                self.fc = nn.Linear(4, 2)  # fc

            def forward(self, x):
                return self.fc(x)
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # a head
                self.fc = nn.Linear(4, 2)  # fc

            def forward(self, x):
                return self.fc(x)
""",
        id="NN305",
    ),
    pytest.param(
        "NN305",
        True,
        """
        class Model(nn.Module):
            def __init__(self):
                # a head
                self.fc = nn.Linear(4, 2)  # fc
                # base
                super().__init__(  # init
                )  # late

            def forward(self, x):
                return self.fc(x)
""",
        """
        class Model(nn.Module):
            def __init__(self):
                # base
                super().__init__(  # init
                )  # late
                # a head
                self.fc = nn.Linear(4, 2)  # fc

            def forward(self, x):
                return self.fc(x)
""",
        id="NN305b",
    ),
    pytest.param(
        "NN305",
        True,
        """
        class Model(nn.Module):
            def __init__(self):
                # base
                super(  # unbound
                    Model  # class
                ).__init__()  # init
                self.fc = nn.Linear(4, 2)  # fc

            def forward(self, x):
                return self.fc(x)
""",
        """
        class Model(nn.Module):
            def __init__(self):
                # base
                # unbound
                # class
                super().__init__()  # init
                self.fc = nn.Linear(4, 2)  # fc

            def forward(self, x):
                return self.fc(x)
""",
        id="NN305c",
    ),
    pytest.param(
        "NN405",
        False,
        """
        class Model(nn.Module):
            def forward(self, x):
                # resize
                y = F.upsample_bilinear(x, scale_factor=2)  # up
                return F.upsample(  # again
                    y,  # input
                    scale_factor=2,  # double
                )  # out
""",
        """
        class Model(nn.Module):
            def forward(self, x):
                # resize
                y = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)  # up
                return F.interpolate(  # again
                    y,  # input
                    scale_factor=2,  # double
                )  # out
""",
        id="NN405",
    ),
    pytest.param(
        "NN501",
        True,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)

            def forward(self, x):
                # activate
                y = F.relu(self.conv(x))  # act
                return F.max_pool2d(  # pool
                    y,  # input
                    2,  # size
                )  # out
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
                self.relu = nn.ReLU()
                self.max_pool2d = nn.MaxPool2d(2)

            def forward(self, x):
                # activate
                y = self.relu(self.conv(x))  # act
                # pool
                # input
                # size
                return self.max_pool2d(y)  # out
""",
        id="NN501",
    ),
    pytest.param(
        "NN202",
        True,
        """
        class Model(nn.Module):
            def __init__(self, out_channels_of_block=8, in_channels_of_block=3):
                super().__init__()
                self.act = nn.ReLU()
                # kernel
                self.conv_weight = nn.Parameter(torch.randn(out_channels_of_block, in_channels_of_block, 3, 3))  # w

            def forward(self, x):
                return F.conv2d(x, self.conv_weight, stride=2, padding=1, dilation=1)  # conv
""",
        """
        class Model(nn.Module):
            def __init__(self, out_channels_of_block=8, in_channels_of_block=3):
                super().__init__()
                self.act = nn.ReLU()
                # kernel
                self.conv = nn.Conv2d(
                    in_channels_of_block,
                    out_channels_of_block,
                    3,
                    stride=2,
                    padding=1,
                    bias=False,
                )  # w
                nn.init.normal_(self.conv.weight)

            def forward(self, x):
                return self.conv(x)  # conv
""",
        id="NN202-exploded",
    ),
    pytest.param(
        "NN304",
        False,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # learned
                self.scale = torch.ones(  # scale
                    3, requires_grad=True  # trained
                )  # per channel

            def forward(self, x):
                return x * self.scale
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                # learned
                self.scale = nn.Parameter(torch.ones(  # scale
                    3, requires_grad=True  # trained
                ))  # per channel

            def forward(self, x):
                return x * self.scale
""",
        id="NN304-parameter",
    ),
    pytest.param(
        "NN603",
        True,
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(20, 64)
                # hand-made head
                self.w = nn.Parameter(torch.randn(  # weight
                    64,  # rows
                    10,  # columns
                ))  # head

            def forward(self, x):
                return F.linear(self.fc(x), self.w)  # project
""",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(20, 64)
                # hand-made head
                self.w = nn.Parameter(torch.randn(  # weight
                    10,  # rows
                    64,  # columns
                ))  # head

            def forward(self, x):
                return F.linear(self.fc(x), self.w)  # project
""",
        id="NN603",
    ),
    pytest.param(
        "NN701",
        False,
        """
        def train(model, loader, epochs):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for epoch in range(epochs):
                for x, y in loader:
                    opt.zero_grad()
                    loss = F.cross_entropy(model(x), y)  # step
                    loss.backward()
                    opt.step()
                # validate
                model.eval()  # switch
""",
        """
        def train(model, loader, epochs):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for epoch in range(epochs):
                for x, y in loader:
                    opt.zero_grad()
                    loss = F.cross_entropy(model(x), y)  # step
                    loss.backward()
                    opt.step()
                # validate
                model.eval()  # switch
                model.train()
""",
        id="NN701",
    ),
    pytest.param(
        "NN703",
        False,
        """
        def evaluate(model, loader):
            model.eval()
            total = 0
            # every batch
            for x in loader:  # in order
                total += model(x).sum().item()  # logits
            print(total)


        evaluate(nn.Linear(2, 2), [torch.randn(1, 2)])
""",
        """
        def evaluate(model, loader):
            model.eval()
            total = 0
            # every batch
            with torch.inference_mode():
                for x in loader:  # in order
                    total += model(x).sum().item()  # logits
                print(total)


        evaluate(nn.Linear(2, 2), [torch.randn(1, 2)])
""",
        id="NN703",
    ),
    pytest.param(
        "NN704",
        False,
        """
        def train(model, opt, loader):
            total = 0.0
            for x, y in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                # running total
                total += loss  # every step
            return total
""",
        """
        def train(model, opt, loader):
            total = 0.0
            for x, y in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                # running total
                total += loss.item()  # every step
            return total
""",
        id="NN704",
    ),
]


def _comments(text: str) -> Counter[str]:
    return Counter(re.findall(r"#.*", text))


@pytest.mark.parametrize(("code", "unsafe", "before", "after"), CASES)
def test_fix_keeps_every_comment(code: str, unsafe: bool, before: str, after: str) -> None:
    rule = get_rule(code)
    assert rule is not None and rule.fix != "none"
    source = HEADER + textwrap.dedent(before).lstrip("\n")
    fixed = fix_text(source, unsafe=unsafe, select=[code])
    assert fixed != source, "the fix did not apply"
    assert _comments(fixed) == _comments(source)
    assert fixed == HEADER + textwrap.dedent(after).lstrip("\n")


def test_every_rule_with_a_fix_has_a_case() -> None:
    from nnlint.rules import ALL_RULES

    with_fix = {rule.code for rule in ALL_RULES if rule.fix != "none" and rule.code != "NN002"}
    assert {case.values[0] for case in CASES} == with_fix  # NN002 edits comments: tests/test_rules_trust.py


def test_cli_fix_keeps_the_trailing_comment_of_a_registered_buffer(tmp_path: Path) -> None:
    """The issue's example, through ``nnlint check --fix``."""
    body = """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.mask = torch.ones(3)  # causal

            def forward(self, x):
                return x * self.mask
        """
    (tmp_path / "m.py").write_text(HEADER + textwrap.dedent(body).lstrip("\n"))
    result = run_cli("check", "--fix", "--select", "NN304", "--no-cache", "m.py", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    fixed = (tmp_path / "m.py").read_text()
    assert '        self.register_buffer("mask", torch.ones(3), persistent=False)  # causal\n' in fixed


def test_removing_the_last_statement_of_a_block_keeps_its_comments() -> None:
    text = "def f():\n    x = 1\n    # why\n    y = g(  # call\n        x,  # argument\n    )  # done\n\n\nz = 2\n"
    fix = Fix("safe", "remove", (RemoveStatement(Span(4, 4, 6, 5)),))
    fixed, applied = apply_fixes(text, [fix])
    assert applied == [fix]
    assert fixed == "def f():\n    x = 1\n    # why\n    # call\n    # argument\n    # done\n\n\nz = 2\n"


def test_replacing_with_several_statements_keeps_the_trailing_comment_on_the_first() -> None:
    text = "def f():\n    x = 1  # one\n    return x\n"
    fix = Fix("safe", "replace", (ReplaceStatement(Span(2, 4, 2, 9), "x = 2\ny = x\n"),))
    fixed, _ = apply_fixes(text, [fix])
    assert fixed == "def f():\n    x = 2  # one\n    y = x\n    return x\n"
