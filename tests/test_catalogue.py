"""Every rule's catalogue page: present, examples lint and fix as documented, and behave with torch."""

from __future__ import annotations

import json
import re

import pytest

from nnlint.api import findings, fix_text
from nnlint.catalogue import WITHOUT_EXAMPLES, examples, page_codes, read_page, sections
from nnlint.rules import ALL_CODES, ALL_RULES, PARSE_ERROR

CODES = [rule.code for rule in ALL_RULES]
REQUIRED_SECTIONS = ["What it flags", "Why it is a problem", "Bad example", "Fixed example", "Fix safety"]


@pytest.mark.parametrize("code", CODES)
def test_page_structure(code: str) -> None:
    page = read_page(code)
    assert page is not None, f"rules/{code}.md is missing"
    rule = next(r for r in ALL_RULES if r.code == code)
    assert page.startswith(f"# {code} `{rule.name}`\n")
    assert f"| {'on' if rule.default_enabled else 'off'} | {rule.fix} |" in page
    if rule.runtime_only:
        assert "`nnlint runtime`" in page
    assert list(sections(page))[: len(REQUIRED_SECTIONS)] == REQUIRED_SECTIONS


def test_every_code_has_a_page_and_every_page_a_code() -> None:
    assert page_codes() == sorted(ALL_CODES)


#: NN001 (the files nnlint cannot read) has no model code to show: its page describes, nothing runs
NN001_SECTIONS = ["What it flags", "Why it is a problem", "Example", "Fix safety", "Not flagged"]


def test_nn001_page_has_no_examples_to_run() -> None:
    assert {PARSE_ERROR} == WITHOUT_EXAMPLES
    page = read_page(PARSE_ERROR)
    assert page is not None, "rules/NN001.md is missing"
    assert page.startswith("# NN001 `parse-error`\n")
    assert "| on | none |" in page
    assert list(sections(page)) == NN001_SECTIONS
    assert "```python" not in page
    with pytest.raises(LookupError, match="NN001 has no examples"):
        examples(PARSE_ERROR)


def test_nn001_page_shows_what_nnlint_prints(tmp_path) -> None:
    """The page's console example is the real output for the two files it names."""
    from conftest import run_cli

    example = sections(read_page(PARSE_ERROR) or "")["Example"]
    block = re.search(r"```console\n\$ (?P<command>.+?)\n(?P<output>.*?)```", example, re.S)
    assert block is not None
    (tmp_path / "broken.py").write_text("def broken(:\n    pass\n")
    (tmp_path / "binary.py").write_bytes(b"x = 1\x00\n")
    result = run_cli(*block.group("command").split()[1:], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == block.group("output")


STATIC_CODES = [rule.code for rule in ALL_RULES if not rule.runtime_only]
RUNTIME_CODES = [rule.code for rule in ALL_RULES if rule.runtime_only]


#: rules off by default: another page's example may use what they flag (NN501: ``F.softmax(x, dim=-1)``)
OPT_IN_CODES = [rule.code for rule in ALL_RULES if not rule.default_enabled]


def _page_config(code: str) -> dict:
    """``<!-- shapes: [...] -->``: the example input shape ``[tool.nnlint.shapes]`` gives ``Model``."""
    from pathlib import Path

    from nnlint.engine.config import Config, parse_shapes

    match = re.search(r"<!-- shapes: (.+?) -->", read_page(code) or "")
    if not match:
        return {}
    shapes = {"example.py::Model": parse_shapes(json.loads(match.group(1)))}
    return {"config": Config(root=Path.cwd(), shapes=shapes)}


@pytest.mark.parametrize("code", STATIC_CODES)
def test_bad_example_is_flagged_and_fixed_example_is_clean(code: str) -> None:
    example = examples(code)
    others = [other for other in OPT_IN_CODES if other != code]
    options = _page_config(code)
    assert {f.code for f in findings(example.bad, select=["ALL"], ignore=others, **options)} == {code}
    assert findings(example.fixed, select=["ALL"], ignore=others, **options) == []


@pytest.mark.parametrize("code", [rule.code for rule in ALL_RULES if rule.fix != "none"])
def test_fix_turns_bad_example_into_fixed_example(code: str) -> None:
    example = examples(code)
    options = {"select": ["DEFAULT", code]} if code in OPT_IN_CODES else {}
    assert fix_text(example.bad, unsafe=True, **options) == example.fixed


def _example_input(code: str) -> str:
    match = re.search(r"<!-- input: (.+?) -->", read_page(code) or "")
    assert match, f"{code}: page has no <!-- input: ... --> comment"
    return match.group(1)


@pytest.mark.torch
@pytest.mark.parametrize("code", RUNTIME_CODES)
def test_runtime_examples_are_found_by_running_them(code: str, tmp_path) -> None:
    from conftest import run_cli

    example = examples(code)
    input_expression = _example_input(code)
    for name, text in (("bad", example.bad), ("fixed", example.fixed)):
        (tmp_path / f"{name}.py").write_text(text)
    bad = run_cli("runtime", "bad.py::Model", "--input", input_expression, "--output-format", "json", cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    assert {item["code"] for item in json.loads(bad.stdout)} == {code}
    assert findings(example.bad, select=["ALL"]) == []  # static analysis cannot see these
    fixed = run_cli("runtime", "fixed.py::Model", "--input", input_expression, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


#: rules whose bad example fails as soon as the model is built
BUILD_FAILURES = {
    "NN305": (AttributeError, "cannot assign module before Module.__init__"),
    "NN402": (TypeError, "unexpected keyword argument 'biass'"),
    "NN407": (AttributeError, "has no attribute 'Conv2D'"),
}
#: rules whose bad example fails at its first forward pass
CALL_FAILURES = {
    "NN401": (TypeError, "missing 1 required positional argument"),
    "NN601": (RuntimeError, "mat1 and mat2 shapes cannot be multiplied"),
    "NN603": (RuntimeError, "mat1 and mat2 shapes cannot be multiplied"),
    "NN602": (RuntimeError, "Expected 3D (unbatched) or 4D (batched) input to conv2d"),
    "NN604": (RuntimeError, "mat1 and mat2 shapes cannot be multiplied (2x512 and 800x10)"),
}


def _behaves_like_registered(code, bad, good, x, torch, outputs) -> None:
    """NN302/NN303: same values, but only the fixed module registers them."""
    assert torch.allclose(outputs(bad, x, False), outputs(good, x, False))
    hidden = 3 * (8 * 8 + 8) if code == "NN302" else 2 * 8
    assert sum(p.numel() for p in good.parameters()) == sum(p.numel() for p in bad.parameters()) + hidden
    assert len(good.state_dict()) > len(bad.state_dict())


def _behaves_like_migrated(code, bad, good, x, torch, outputs) -> None:
    """NN2xx: the layer computes what the hand-made tensors did, once the state_dict is migrated."""
    (finding,) = findings(examples(code).bad, select=[code])
    renames = dict(finding.fix.state_dict.renames)
    good.load_state_dict({renames.get(k, k): v for k, v in bad.state_dict().items()}, strict=True)
    for train in (False, True):
        assert torch.allclose(outputs(bad, x, train), outputs(good, x, train), atol=1e-6)


def _behaves_with_dim(bad, good, x, torch, outputs) -> None:
    """NN403: the implicit dim of a 3-d input is 0: probabilities sum to one across the batch."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrong = outputs(bad, x, False)
    assert torch.allclose(wrong.sum(0), torch.ones(3, 5))
    assert torch.allclose(outputs(good, x, False).sum(-1), torch.ones(2, 3))


def _behaves_without_warning(bad, good, x, torch, outputs) -> None:
    """NN405: identical output, and only the old call warns."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = outputs(bad, x, False)
    assert any("deprecated" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(old, outputs(good, x, False))


def _behaves_with_batch_statistics(bad, good, x, torch, outputs) -> None:
    """NN103: eval unchanged; in training the fixed layer uses batch statistics and updates the running ones."""
    assert torch.allclose(outputs(bad, x, False), outputs(good, x, False))
    outputs(bad, x, True)
    outputs(good, x, True)
    assert torch.equal(bad.running_mean, torch.zeros(4))
    assert not torch.equal(good.running_mean, torch.zeros(4))
    assert torch.allclose(outputs(good, x, True).mean(0), torch.zeros(4), atol=1e-5)


def _unused_output(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN406: the fixed model really uses its convolution (outputs differ, conv gets gradients)."""
    same_weights(bad, good)
    assert not torch.allclose(outputs(bad, x, False), outputs(good, x, False))
    good.eval()
    good(x).sum().backward()
    assert good.conv.weight.grad is not None and good.conv.weight.grad.abs().sum() > 0


def _built_in_forward(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN301: the layer built in forward gets new weights at every call; the model never owns them."""
    assert not deterministic(bad, x)
    assert deterministic(good, x)
    assert sum(p.numel() for p in good.parameters()) == sum(p.numel() for p in bad.parameters()) + 8 * 2 + 2
    assert isinstance(dict(good.named_children())["head"], torch.nn.Linear)
    assert set(good.state_dict()) == set(bad.state_dict()) | {"head.weight", "head.bias"}


def _plain_tensor(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN304: same output, but only the buffer follows .to(); state_dict is unchanged (non-persistent)."""
    assert torch.equal(outputs(bad, x, False), outputs(good, x, False))
    assert "causal" in dict(good.named_buffers()) and "causal" not in dict(bad.named_buffers())
    assert good.state_dict().keys() == bad.state_dict().keys()
    assert good.to(torch.float64).causal.dtype == torch.float64
    assert bad.to(torch.float64).causal.dtype == torch.float32


def _loss_on_probabilities(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN404: the same logits, but the loss on probabilities is a different (wrong) number."""
    same_weights(bad, good)
    assert not torch.allclose(outputs(bad, x, False), outputs(good, x, False))


def _stateless_layers(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN501: exactly the same output and state_dict; the activation and the pooling are now modules."""
    same_weights(bad, good)
    assert torch.equal(outputs(bad, x, False), outputs(good, x, False))
    assert good.state_dict().keys() == bad.state_dict().keys()
    assert isinstance(good.relu, torch.nn.ReLU) and isinstance(good.max_pool2d, torch.nn.MaxPool2d)
    assert "ReLU()" in repr(good) and "ReLU" not in repr(bad)


def _unused_layer(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN306: the unused layer only adds parameters; without it the model computes the same."""
    good.load_state_dict({k: v for k, v in bad.state_dict().items() if not k.startswith("proj.")})
    assert torch.equal(outputs(bad, x, False), outputs(good, x, False))
    assert sum(p.numel() for p in bad.parameters()) - sum(p.numel() for p in good.parameters()) == 8 * 8 + 8
    bad(x).sum().backward()
    assert bad.proj.weight.grad is None  # never trained


def _same_program(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN002: only a comment changed: the same outputs in both modes."""
    same_weights(bad, good)
    for train in (False, True):
        assert torch.equal(outputs(bad, x, train), outputs(good, x, train))


def _evaluate_of(model):
    """The example's ``evaluate`` function, from the module that defines the model's class."""
    return type(model).__init__.__globals__["evaluate"]


def _evaluation_in_training_mode(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN702: the bad ``evaluate`` keeps dropout on (two calls differ); the fixed one is deterministic."""
    same_weights(bad, good)
    assert not torch.equal(_evaluate_of(bad)(bad, x), _evaluate_of(bad)(bad, x))
    assert torch.equal(_evaluate_of(good)(good, x), _evaluate_of(good)(good, x))


def _inference_builds_graphs(bad, good, x, torch, outputs, deterministic, same_weights) -> None:
    """NN703: the same values, but only the bad ``evaluate`` returns them with an autograd graph."""
    same_weights(bad, good)
    old, new = _evaluate_of(bad)(bad, x), _evaluate_of(good)(good, x)
    assert old.grad_fn is not None and new.grad_fn is None and not new.requires_grad
    assert torch.equal(old.detach(), new)


SPECIAL_BEHAVIOUR = {
    "NN002": _same_program,
    "NN301": _built_in_forward,
    "NN304": _plain_tensor,
    "NN306": _unused_layer,
    "NN404": _loss_on_probabilities,
    "NN406": _unused_output,
    "NN501": _stateless_layers,
    "NN702": _evaluation_in_training_mode,
    "NN703": _inference_builds_graphs,
}


#: pages whose examples are training loops: their torch behaviour is checked in tests/test_rules_training_loops.py
SCRIPT_BEHAVIOUR = {
    "NN701": "test_nn701_example_trains_without_dropout_after_the_first_epoch",
    "NN704": "test_nn704_example_keeps_the_graph",
    "NN705": "test_nn705_example_sums_gradients",
}


@pytest.mark.torch
@pytest.mark.parametrize("code", STATIC_CODES)
def test_examples_behave_as_the_page_says(code: str) -> None:
    from runtime_helpers import eval_is_deterministic, module_from_source, outputs, same_weights, torch

    if code in SCRIPT_BEHAVIOUR:  # the examples are training scripts, not a Model on an input
        import test_rules_training_loops

        getattr(test_rules_training_loops, SCRIPT_BEHAVIOUR[code])()
        return
    example = examples(code)
    torch.manual_seed(0)
    x = eval(_example_input(code), {"torch": torch})
    bad_class = module_from_source(example.bad, f"{code}_bad").Model
    torch.manual_seed(0)
    good = module_from_source(example.fixed, f"{code}_fixed").Model()
    if code in BUILD_FAILURES:
        error, message = BUILD_FAILURES[code]
        with pytest.raises(error, match=re.escape(message)):
            bad_class()
        outputs(good, x, False)
        return
    torch.manual_seed(0)
    bad = bad_class()
    if code in CALL_FAILURES:
        error, message = CALL_FAILURES[code]
        with pytest.raises(error, match=re.escape(message)):
            outputs(bad, x, False)
        outputs(good, x, False)
        return
    special = SPECIAL_BEHAVIOUR.get(code)
    if special is not None:
        special(bad, good, x, torch, outputs, eval_is_deterministic, same_weights)
        return
    if code in ("NN302", "NN303"):
        _behaves_like_registered(code, bad, good, x, torch, outputs)
    elif code.startswith("NN2"):
        _behaves_like_migrated(code, bad, good, x, torch, outputs)
    elif code == "NN403":
        same_weights(bad, good)
        _behaves_with_dim(bad, good, x, torch, outputs)
    elif code == "NN405":
        same_weights(bad, good)
        _behaves_without_warning(bad, good, x, torch, outputs)
    elif code == "NN103":
        same_weights(bad, good)
        _behaves_with_batch_statistics(bad, good, x, torch, outputs)
    else:
        # training is unchanged; eval stops dropping
        same_weights(bad, good)
        assert torch.equal(outputs(bad, x, True), outputs(good, x, True))
        assert not eval_is_deterministic(bad, x)
        assert eval_is_deterministic(good, x)
