"""NN101-NN104: what is reported and what is not."""

from __future__ import annotations

import pytest

from nnlint.api import findings

from conftest import found, module_source


def method(body: str, signature: str = "self, x", decorator: str = "") -> str:
    """A Module subclass whose ``forward`` has ``body``; findings' rows start at 8 for line one."""
    indented = "\n".join(("        " + line) if line.strip() else "" for line in body.strip("\n").splitlines())
    deco = f"    {decorator}\n" if decorator else ""
    return module_source(f"class M(nn.Module):\n{deco}    def forward({signature}):\n{indented}\n")


# -- NN101 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        "F.dropout(x)",
        "F.dropout(x, 0.1)",
        "F.dropout(x, p=0.1)",
        "F.dropout(x, 0.1, inplace=True)",
        "F.dropout2d(x, 0.1)",
        "F.alpha_dropout(x, 0.2)",
        "F.multi_head_attention_forward(x, x, x, 8, 2, w, b, None, None, False, 0.1, ow, ob)",
    ],
)
def test_nn101_reports_dropout_without_training(call: str) -> None:
    assert found(method(f"return {call}")) == [("NN101", 8)]


@pytest.mark.parametrize(
    "call",
    [
        "F.dropout(x, 0.1, training=self.training)",
        "F.dropout(x, 0.1, self.training)",
        "F.dropout(x, 0.1, training=some_variable)",
        "F.dropout(x, 0.0)",
        "F.dropout(x, p=0)",
        "F.dropout(x, *args)",
        "F.dropout(x, 0.1, **kwargs)",
        "F.multi_head_attention_forward(x, x, x, 8, 2, w, b, None, None, False, 0.0, ow, ob)",
        "F.relu(x)",
    ],
)
def test_nn101_negatives(call: str) -> None:
    assert found(method(f"return {call}")) == []


def test_nn101_training_forwarded_from_caller() -> None:
    assert found(method("return F.dropout(x, 0.1, training)", "self, x, training")) == []


@pytest.mark.parametrize(
    "body",
    [
        "if self.training:\n    x = F.dropout(x, 0.1)\nreturn x",
        "if self.training and self.p > 0:\n    x = F.dropout(x, self.p)\nreturn x",
        "if not self.training:\n    return x\nreturn F.dropout(x, 0.1)",
        "if not self.training or self.p == 0:\n    return x\nreturn F.dropout(x, self.p)",
        "if not self.training:\n    pass\nelse:\n    x = F.dropout(x, 0.1)\nreturn x",
        "return F.dropout(x, 0.1) if self.training else x",
        "return x if not self.training else F.dropout(x, 0.1)",
        "for layer in self.layers:\n    if not self.training:\n        continue\n    x = F.dropout(x, 0.1)\nreturn x",
    ],
)
def test_nn101_training_only_code_is_not_reported(body: str) -> None:
    assert found(method(body)) == []


@pytest.mark.parametrize(
    ("body", "row"),
    [
        ("if self.training:\n    pass\nreturn F.dropout(x, 0.1)", 10),
        ("if not self.training:\n    x = F.dropout(x, 0.1)\nreturn x", 9),
        ("if self.training or self.p:\n    x = F.dropout(x, 0.1)\nreturn x", 9),
        ("if other.training:\n    x = F.dropout(x, 0.1)\nreturn x", 9),
        ("return x if self.training else F.dropout(x, 0.1)", 8),
    ],
)
def test_nn101_guards_that_do_not_imply_training(body: str, row: int) -> None:
    assert found(method(body)) == [("NN101", row)]


def test_nn101_in_nested_function_and_lambda() -> None:
    body = "def inner(t):\n    return F.dropout(t, 0.1)\nf = lambda t: F.dropout(t, 0.2)\nreturn inner(f(x))"
    assert found(method(body)) == [("NN101", 9), ("NN101", 10)]


def test_nn101_in_any_method_not_only_forward() -> None:
    source = module_source(
        """
        class M(nn.Module):
            def helper(self, x):
                return F.dropout(x, 0.1)

            async def stream(self, x):
                return F.dropout(x, 0.1)
        """
    )
    assert found(source) == [("NN101", 8), ("NN101", 11)]


def test_nn101_without_self_has_no_fix() -> None:
    (finding,) = findings(method("return F.dropout(x, 0.1)", "x", "@staticmethod"))
    assert finding.fix is None
    assert "no fix" in finding.message


def test_nn101_uses_the_instance_parameter_name() -> None:
    (finding,) = findings(method("return F.dropout(x, 0.1)", "this, x"))
    assert finding.fix is not None
    assert finding.fix.edits[0].value == "this.training"  # type: ignore[union-attr]


def test_nn101_outside_modules() -> None:
    source = module_source(
        """
        def free(x):
            return F.dropout(x, 0.1)

        class Plain:
            def forward(self, x):
                return F.dropout(x, 0.1)

        lambda_at_module = lambda x: F.dropout(x, 0.1)
        """
    )
    assert found(source) == []


def test_finding_position_and_message() -> None:
    (finding,) = findings(method("y = 1 + F.dropout(x, 0.1)"))
    assert (finding.span.row, finding.span.column, finding.span.end_row, finding.span.end_column) == (8, 16, 8, 33)
    assert finding.message.startswith("`F.dropout` defaults to `training=True`")


def test_columns_are_characters_not_bytes() -> None:
    (finding,) = findings(method('s = "héllo"; y = F.dropout(x, 0.1)'), select=["NN101"])
    assert finding.span.column == len('        s = "héllo"; y = ')


# -- noqa --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("  # noqa", []),
        ("  # noqa: NN101", []),
        ("  # NOQA:NN101", []),
        ("  # noqa: E501, NN101", []),
        ("  # noqa: NN102", [("NN101", 8)]),
        ("  # noqa: E501", [("NN101", 8)]),
        ("  # some comment", [("NN101", 8)]),
    ],
)
def test_noqa(comment: str, expected: list[tuple[str, int]]) -> None:
    assert found(method(f"return F.dropout(x, 0.1){comment}")) == expected


def test_file_level_exemption() -> None:
    source = "# nnlint: noqa: NN101\n" + method("return F.dropout(x, 0.1) + torch.dropout(x, 0.1, True)")
    assert found(source, select=["DEFAULT", "NN102"]) == [("NN102", 9)]  # NN102 is opt-in


# -- NN102 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        "F.dropout(x, 0.1, training=True)",
        "F.dropout(x, 0.1, training=False)",
        "F.dropout(x, 0.1, True)",
        "F.dropout2d(x, training=True)",
        "torch.dropout(x, 0.1, True)",
        "torch.dropout(x, 0.1, train=False)",
        "torch.alpha_dropout(x, 0.1, True)",
        "torch.feature_dropout(x, 0.1, True)",
        "torch.feature_alpha_dropout(x, 0.1, False)",
    ],
)
def test_nn102_reports_literal_flags(call: str) -> None:
    assert found(method(f"return {call}"), select=["NN102"]) == [("NN102", 8)]


def test_nn102_is_opt_in() -> None:
    """A literal flag is deliberate about as often as not (rules/NN102.md): off unless selected."""
    source = method("return F.dropout(x, 0.1, training=True)")
    assert found(source) == []
    assert found(source, select=["ALL"]) == [("NN102", 8)]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "F.dropout(x, 0.1, training=True)",
            "`F.dropout` hard-codes `training=True`: dropout is applied even after `model.eval()`; use "
            "`training=self.training`, or if it must stay on at inference (MC dropout, a Tacotron prenet), "
            "add `# noqa: NN102`",
        ),
        (
            "torch.dropout(x, 0.1, False)",
            "`torch.dropout` hard-codes `train=False`: dropout is never applied, not even in training; use "
            "`train=self.training`, or if the module only ever runs at inference, add `# noqa: NN102`",
        ),
    ],
)
def test_nn102_message_says_how_to_keep_a_deliberate_flag(call: str, message: str) -> None:
    (finding,) = findings(method(f"return {call}"), select=["NN102"])
    assert finding.message == message
    assert found(method(f"return {call}  # noqa: NN102"), select=["NN102"]) == []


@pytest.mark.parametrize(
    "body",
    [
        "return F.dropout(x, 0.1, training=self.training)",
        "return torch.dropout(x, 0.1, self.training)",
        "return F.dropout(x, 0.0, training=True)",
        "if self.training:\n    x = F.dropout(x, 0.1, training=True)\nreturn x",
        "if not self.training:\n    x = F.dropout(x, 0.1, training=False)\nreturn x",
    ],
)
def test_nn102_negatives(body: str) -> None:
    assert found(method(body), select=["NN102"]) == []


def test_nn102_fix_is_unsafe() -> None:
    (finding,) = findings(method("return F.dropout(x, 0.1, training=True)"), select=["NN102"])
    assert finding.fix is not None and finding.fix.applicability == "unsafe"


# -- NN103 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        "F.batch_norm(x, self.rm, self.rv)",
        "F.batch_norm(x, self.rm, self.rv, self.w, self.b, momentum=0.1)",
        "F.rrelu(x)",
        "F.rrelu(x, 0.1, 0.3)",
        "F.rrelu_(x)",
    ],
)
def test_nn103_reports_missing_training(call: str) -> None:
    assert found(method(f"return {call}")) == [("NN103", 8)]


@pytest.mark.parametrize(
    "body",
    [
        "return F.batch_norm(x, self.rm, self.rv, training=self.training)",
        "return F.batch_norm(x, self.rm, self.rv, self.w, self.b, self.training)",
        "return F.batch_norm(x, self.rm, self.rv, training=True)",
        "return F.rrelu(x, 0.1, 0.3, self.training)",
        "if not self.training:\n    return F.batch_norm(x, self.rm, self.rv)\nreturn x",
        "return F.batch_norm(x, self.rm, self.rv, **self.options)",
    ],
)
def test_nn103_negatives(body: str) -> None:
    assert found(method(body)) == []


def test_nn103_reported_under_training_guard() -> None:
    assert found(method("if self.training:\n    x = F.rrelu(x)\nreturn x")) == [("NN103", 9)]


# -- NN104 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        "F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)",
        "F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop)",
        "F.scaled_dot_product_attention(q, k, v, None, 0.1)",
        "F.scaled_dot_product_attention(q, k, v, dropout_p=self.config.attention_dropout)",
    ],
)
def test_nn104_reports_untied_dropout(call: str) -> None:
    assert found(method(f"return {call}", "self, q, k, v")) == [("NN104", 8)]


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        ("return F.scaled_dot_product_attention(q, k, v)", "self, q, k, v"),
        ("return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)", "self, q, k, v"),
        ("return F.scaled_dot_product_attention(q, k, v, None, 0)", "self, q, k, v"),
        (
            "return F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)",
            "self, q, k, v",
        ),
        (
            "p = self.p if self.training else 0.0\nreturn F.scaled_dot_product_attention(q, k, v, dropout_p=p)",
            "self, q, k, v",
        ),
        (
            "p = 0.0 if not self.training else self.p\nreturn F.scaled_dot_product_attention(q, k, v, None, p)",
            "self, q, k, v",
        ),
        (
            "p = self.p\nif not self.training:\n    p = 0.0\n"
            "return F.scaled_dot_product_attention(q, k, v, dropout_p=p)",
            "self, q, k, v",
        ),
        ("return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)", "self, q, k, v, dropout=0.0"),
        (
            "if self.training:\n    return F.scaled_dot_product_attention(q, k, v, dropout_p=self.p)\nreturn q",
            "self, q, k, v",
        ),
        ("return F.scaled_dot_product_attention(q, k, v, dropout_p=self.p * self.training)", "self, q, k, v"),
    ],
)
def test_nn104_negatives(body: str, signature: str) -> None:
    assert found(method(body, signature)) == []


def test_nn104_local_variable_not_tied() -> None:
    body = "p = self.p\nreturn F.scaled_dot_product_attention(q, k, v, dropout_p=p)"
    assert found(method(body, "self, q, k, v")) == [("NN104", 9)]


# -- selection -----------------------------------------------------------------


def test_select_and_ignore() -> None:
    source = method("return F.dropout(x, 0.1) + torch.dropout(x, 0.1, True) + F.rrelu(x)")
    assert [c for c, _ in found(source)] == ["NN101", "NN103"]  # NN102 is opt-in
    assert [c for c, _ in found(source, select=["ALL"])] == ["NN101", "NN102", "NN103"]
    assert [c for c, _ in found(source, select=["NN102"])] == ["NN102"]
    assert [c for c, _ in found(source, ignore=["NN10"])] == []
    assert [c for c, _ in found(source, select=["NN1"], ignore=["NN101"])] == ["NN102", "NN103"]
    # the more specific selector wins, as in ruff
    assert [c for c, _ in found(source, select=["NN101"], ignore=["NN1"])] == ["NN101"]
