"""NN305: findings, messages and fixes, and what torch really does with each case."""

from __future__ import annotations

import re
import textwrap

import pytest

from nnlint.api import findings, fix_text

from conftest import found, module_source

#: (source after the imports, expected findings, what building ``M()`` does with torch:
#: ``None`` builds a working module, else (exception, message) from ``M()`` or from ``M().parameters()``).
CASES = {
    "never called, layer": (
        """
        class M(nn.Module):
            def __init__(self):
                self.fc = nn.Linear(2, 2)
        """,
        [("NN305", 7)],
        (AttributeError, "cannot assign module before Module.__init__() call"),
    ),
    "never called, plain values only": (
        """
        class M(nn.Module):
            def __init__(self):
                self.size = 2
        """,
        [("NN305", 7)],
        (AttributeError, "'M' object has no attribute '_parameters'"),
    ),
    "called after a layer": (
        """
        class M(nn.Module):
            def __init__(self, d=2):
                self.d = d
                self.fc = nn.Linear(d, d)
                super().__init__()
        """,
        [("NN305", 10)],
        (AttributeError, "cannot assign module before Module.__init__() call"),
    ),
    "called after a parameter in an if": (
        """
        class M(nn.Module):
            def __init__(self, bias=True):
                if bias:
                    self.bias = nn.Parameter(torch.zeros(2))
                super(M, self).__init__()
        """,
        [("NN305", 10)],
        (AttributeError, "cannot assign parameters before Module.__init__() call"),
    ),
    "called after a buffer in a with": (
        """
        class M(nn.Module):
            def __init__(self):
                with torch.no_grad():
                    self.mask = nn.Buffer(torch.ones(2))
                nn.Module.__init__(self)
        """,
        [("NN305", 10)],
        (AttributeError, "cannot assign buffer before Module.__init__() call"),
    ),
    "called after register_buffer": (
        """
        class M(nn.Module):
            def __init__(self):
                self.register_buffer("mask", torch.ones(2))
                super().__init__()
        """,
        [("NN305", 9)],
        (AttributeError, "cannot assign buffer before Module.__init__() call"),
    ),
    "called after setattr in a for": (
        """
        class M(nn.Module):
            def __init__(self):
                for i in range(2):
                    setattr(self, f"layer{i}", nn.Linear(2, 2))
                super().__init__()
        """,
        [("NN305", 10)],
        (AttributeError, "cannot assign module before Module.__init__() call"),
    ),
    "called after a conditional layer": (
        """
        class M(nn.Module):
            def __init__(self, norm=True):
                self.norm = nn.LayerNorm(2) if norm else None
                super().__init__()
        """,
        [("NN305", 9)],
        (AttributeError, "cannot assign module before Module.__init__() call"),
    ),
    "called after a helper that assigns a layer": (
        """
        class M(nn.Module):
            def __init__(self):
                self._build()
                super().__init__()

            def _build(self):
                self.fc = nn.Linear(2, 2)
        """,
        [("NN305", 9)],
        (AttributeError, "cannot assign module before Module.__init__() call"),
    ),
    "called after plain values, tensors and lists": (
        """
        class M(nn.Module):
            def __init__(self):
                self.size = 2
                self.table = torch.zeros(2)
                self.blocks = [nn.Linear(2, 2)]
                self.head = None
                super().__init__()
        """,
        [],
        None,
    ),
    "called after a property setter given a plain value": (
        """
        class M(nn.Module):
            def __init__(self):
                self.size = 2
                super().__init__()

            @property
            def size(self):
                return self._size

            @size.setter
            def size(self, value):
                self._size = value
        """,
        [],
        None,
    ),
    "layer assigned in a try that catches AttributeError": (
        """
        class M(nn.Module):
            def __init__(self):
                try:
                    self.fc = nn.Linear(2, 2)
                except AttributeError:
                    pass
                super().__init__()
        """,
        [],
        None,
    ),
    "a helper of the class calls nn.Module.__init__": (
        """
        class M(nn.Module):
            def __init__(self):
                self._init_module()
                self.fc = nn.Linear(2, 2)

            def _init_module(self):
                nn.Module.__init__(self)
        """,
        [],
        None,
    ),
    "an inherited helper is given self": (
        """
        class Base(nn.Module):
            @classmethod
            def _setup(cls, self):
                nn.Module.__init__(self)


        class M(Base):
            def __init__(self):
                self.size = 2
                self._setup(self)
        """,
        [],
        None,
    ),
    "super().__init__(**options)": (
        """
        class M(nn.Module):
            def __init__(self, **options):
                super().__init__(**options)
                self.fc = nn.Linear(2, 2)
        """,
        [],
        None,
    ),
    "super(Base, self) skips the parent's __init__ on purpose": (
        """
        class Base(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.fc = nn.Linear(d, d)


        class M(Base):
            def __init__(self):
                super(Base, self).__init__()
                self.fc = nn.Linear(2, 2)
        """,
        [],
        None,
    ),
    "unbound super(M)": (
        """
        class M(nn.Module):
            def __init__(self):
                super(M).__init__()
                self.fc = nn.Linear(2, 2)
        """,
        [("NN305", 8)],
        (AttributeError, "cannot assign module before Module.__init__() call"),
    ),
    "unbound super(M), plain values only": (
        """
        class M(nn.Module):
            def __init__(self):
                super(M).__init__()
                self.size = 2
        """,
        [("NN305", 8)],
        (AttributeError, "'M' object has no attribute '_parameters'"),
    ),
    "super of a subclass": (
        """
        class M(nn.Module):
            def __init__(self):
                super(Child, self).__init__()
                self.fc = nn.Linear(2, 2)


        class Child(M):
            pass
        """,
        [("NN305", 8)],
        (TypeError, "super(type, obj): obj must be an instance or subtype of type"),
    ),
}


def nn305(text: str, **options: object) -> list[tuple[str, int]]:
    return found(text, select=["NN305"], **options)


@pytest.mark.parametrize("name", CASES)
def test_findings(name: str) -> None:
    source, expected, _ = CASES[name]
    assert nn305(module_source(source)) == expected


@pytest.mark.torch
@pytest.mark.parametrize("name", CASES)
def test_torch_agrees(name: str) -> None:
    """Each reported case fails with torch as the message says; each unreported one builds and works."""
    from runtime_helpers import module_from_source

    source, _, failure = CASES[name]
    model_class = module_from_source(module_source(source), "nn305_case").M
    if failure is None:
        assert list(model_class().parameters()) is not None
        return
    error, message = failure
    with pytest.raises(error, match=re.escape(message)):
        list(model_class().parameters())


def message(source: str) -> str:
    (finding,) = findings(module_source(source), select=["NN305"])
    return finding.message


def test_messages_say_which_line_raises() -> None:
    assert message(CASES["called after a layer"][0]) == (
        "`super().__init__()` is called too late: line 9 assigns a submodule to `self.fc` before it, and that "
        "raises `AttributeError: cannot assign module before Module.__init__() call`; call `super().__init__()` first"
    )
    assert message(CASES["called after a helper that assigns a layer"][0]) == (
        "`super().__init__()` is called too late: line 8 calls `self._build()`, which assigns a submodule to "
        "`self.fc` (line 12) before it, and that raises `AttributeError: cannot assign module before "
        "Module.__init__() call`; call `super().__init__()` first"
    )
    assert message(CASES["never called, layer"][0]) == (
        "`M.__init__` never calls `super().__init__()`: line 8 assigns a submodule to `self.fc`, which raises "
        "`AttributeError: cannot assign module before Module.__init__() call`"
    )
    assert message(CASES["never called, plain values only"][0]) == (
        "`M.__init__` never calls `super().__init__()`: the module has no parameter, buffer or submodule "
        "registries, so calling it raises `AttributeError: 'M' object has no attribute '_backward_hooks'`"
    )
    assert message(CASES["unbound super(M)"][0]) == (
        "`super(M)` without `self` is an unbound super object: `.__init__()` initialises that object, never the "
        "module; line 9 assigns a submodule to `self.fc`, which raises `AttributeError: cannot assign module "
        "before Module.__init__() call`"
    )
    assert message(CASES["super of a subclass"][0]) == (
        "`super(Child, ...)` names a subclass of `M`: `M(...)` raises `TypeError: super(type, obj): obj must be "
        "an instance or subtype of type` and `Child(...)` recurses forever; use `super().__init__(...)`"
    )


@pytest.mark.torch
def test_super_of_a_subclass_recurses_in_the_subclass() -> None:
    from runtime_helpers import module_from_source

    module = module_from_source(module_source(CASES["super of a subclass"][0]), "nn305_subclass")
    with pytest.raises(RecursionError):
        module.Child()


def test_first_assignment_that_certainly_raises_is_named() -> None:
    source = """
    class M(nn.Module):
        def __init__(self):
            self.block = Block()
            self.fc = nn.Linear(2, 2)
            super().__init__()
    """
    assert "line 9 assigns a submodule to `self.fc`" in message(source)  # Block may be no nn.Module


def test_project_class_must_be_a_module() -> None:
    after = """
    class M(nn.Module):
        def __init__(self):
            self.block = {block}()
            super().__init__()
    """
    block = "class Block(nn.Module):\n    pass\n\n\n"
    assert nn305(module_source(block + textwrap.dedent(after.format(block="Block")))) == [("NN305", 14)]
    plain = "class Plain:\n    pass\n\n\n"
    assert nn305(module_source(plain + textwrap.dedent(after.format(block="Plain")))) == []


def test_transformers_modular_templates_are_not_reported_for_order() -> None:
    """In ``modular_*.py`` the converter puts ``super().__init__(config)`` first in the generated file."""
    source = module_source(
        "from .modeling_base import Base\n\n\n"
        "class M(nn.Module):\n    def __init__(self, config):\n"
        "        self.extra = nn.Linear(2, 2)\n        super().__init__(config)\n"
    )
    assert nn305(source, filename="modular_mine.py") == []
    assert nn305(source, filename="modeling_mine.py") == [("NN305", 12)]


# -- fixes -----------------------------------------------------------------------------------


#: a project base class (nnlint must know it is an nn.Module)
BASE = "class Base(nn.Module):\n    pass\n\n\n"


def with_base(source: str) -> str:
    return BASE + textwrap.dedent(source).lstrip("\n")


def fixed(source: str, unsafe: bool = True) -> str:
    return fix_text(module_source(source), unsafe=unsafe, select=["NN305"])


def test_fix_moves_the_call_to_the_top() -> None:
    source = '''
    class M(nn.Module):
        def __init__(self, d=2):
            """A head."""
            self.d = d
            # the projection
            self.fc = nn.Linear(d, d)
            super().__init__()
            self.act = nn.ReLU()
    '''
    assert fixed(source, unsafe=False) == module_source(source)  # the move is unsafe
    assert fixed(source) == module_source(
        '''
        class M(nn.Module):
            def __init__(self, d=2):
                """A head."""
                super().__init__()
                self.d = d
                # the projection
                self.fc = nn.Linear(d, d)
                self.act = nn.ReLU()
        '''
    )


def test_fix_keeps_arguments_that_do_not_depend_on_earlier_statements() -> None:
    source = with_base(
        """
        class M(Base):
            def __init__(self, config, **options):
                self.fc = nn.Linear(2, 2)
                super(M, self).__init__(config, *options, scale=2.0)
        """
    )
    assert fixed(source) == module_source(
        with_base(
            """
            class M(Base):
                def __init__(self, config, **options):
                    super(M, self).__init__(config, *options, scale=2.0)
                    self.fc = nn.Linear(2, 2)
            """
        )
    )


@pytest.mark.parametrize(
    "before",
    [
        "d = options.pop('d')",  # a name the call reads is bound before it
        "options.pop('d')",  # ... or changed
        "self.d = 2",  # the call reads self.d
    ],
)
def test_no_fix_when_the_arguments_depend_on_earlier_statements(before: str) -> None:
    argument = "self.d" if before.startswith("self") else "**options"
    source = with_base(
        f"""
        class M(Base):
            def __init__(self, **options):
                {before}
                self.fc = nn.Linear(2, 2)
                super().__init__({argument})
        """
    )
    (finding,) = findings(module_source(source), select=["NN305"])
    assert finding.code == "NN305" and finding.fix is None


def test_no_fix_when_the_call_is_nested() -> None:
    source = """
    class M(nn.Module):
        def __init__(self, flag):
            self.fc = nn.Linear(2, 2)
            if flag:
                super().__init__()
    """
    (finding,) = findings(module_source(source), select=["NN305"])
    assert (finding.row, finding.fix) == (10, None)


def test_fix_of_unbound_super() -> None:
    assert fixed(CASES["unbound super(M)"][0], unsafe=False) == module_source(
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
        """
    )
    with_arguments = BASE + "class M(Base):\n    def __init__(self, d):\n        super(M).__init__(d)\n"
    (finding,) = findings(module_source(with_arguments), select=["NN305"])
    assert finding.fix is not None and finding.fix.applicability == "unsafe"
    other = "class M(nn.Module):\n    def __init__(self):\n        super(Base).__init__()\n"
    (finding,) = findings(module_source(other), select=["NN305"])
    assert finding.fix is None


def test_fix_of_a_missing_call_is_unchanged() -> None:
    assert fixed(CASES["never called, layer"][0], unsafe=False) == module_source(
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
        """
    )


@pytest.mark.torch
@pytest.mark.parametrize(
    "name", ["called after a layer", "called after a parameter in an if", "unbound super(M)", "never called, layer"]
)
def test_fixed_modules_build(name: str) -> None:
    from runtime_helpers import module_from_source

    text = fixed(CASES[name][0])
    assert nn305(text) == []
    model = module_from_source(text, "nn305_fixed").M()
    assert list(model.parameters())


@pytest.mark.parametrize(
    "source",
    [
        "class M(nn.Module):\n    def __init__(self):\n        self.fc = self.fc\n        self.__init__()\n",
        "class M(nn.Module):\n    def __init__(self):\n        self.f = lambda: super().__init__()\n",
        "class M(nn.Module):\n    def __init__(*args):\n        pass\n",
        "class M(nn.Module):\n    @staticmethod\n    def __init__():\n        pass\n",
        "class M(nn.Module):\n    def __init__(self):\n        self.go()\n\n    def go(self):\n        self.go()\n",
        "class M(nn.Module):\n    def __init__(self):\n        match self:\n            case _:\n"
        "                self.fc = nn.Linear(2, 2)\n        super().__init__()\n",
    ],
)
def test_odd_code_does_not_crash(source: str) -> None:
    findings(module_source(source))


# -- the catalogue page's examples (test_catalogue.py runs only the first pair) ------------------


def page_examples() -> list[tuple[str, str]]:
    from nnlint.catalogue import read_page, sections

    parts = sections(read_page("NN305") or "")
    blocks = [re.findall(r"```python\n(.*?)```", parts[title], re.DOTALL) for title in ("Bad example", "Fixed example")]
    assert len(blocks[0]) == len(blocks[1]) == 4
    return list(zip(*blocks, strict=True))


@pytest.mark.parametrize("index", range(4))
def test_page_examples_lint_and_fix(index: int) -> None:
    bad, good = page_examples()[index]
    assert {finding.code for finding in findings(bad, select=["ALL"])} == {"NN305"}
    assert findings(good, select=["ALL"]) == []
    after_fix = fix_text(bad, unsafe=True)
    assert after_fix == (bad if index == 3 else good)  # super of a subclass: fixed by hand


@pytest.mark.torch
@pytest.mark.parametrize("index", range(4))
def test_page_examples_behave_with_torch(index: int) -> None:
    from runtime_helpers import module_from_source, torch

    bad, good = page_examples()[index]
    error = TypeError if index == 3 else AttributeError
    with pytest.raises(error):
        module_from_source(bad, "nn305_page_bad").Model()
    assert module_from_source(good, "nn305_page_good").Model()(torch.randn(2, 4)).shape == (2, 2)


def test_a_layer_before_a_call_nnlint_cannot_follow_still_raises() -> None:
    source = """
    class M(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            self.apply(init_weights)
    """
    assert nn305(module_source(source)) == [("NN305", 7)]
    plain = """
    class M(nn.Module):
        def __init__(self):
            self.size = 2
            self.apply(init_weights)
    """
    assert nn305(module_source(plain)) == []  # an inherited apply() might run the base __init__
