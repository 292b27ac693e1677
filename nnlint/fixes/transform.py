"""LibCST transforms that apply the edits rules describe, keeping formatting and comments."""

from __future__ import annotations

from collections import defaultdict

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from nnlint.engine.model import AddKeywordArgument, Edit, Fix, GuardArgumentWithTraining, ReplaceArgument, Span


class FixError(Exception):
    """A fix could not be applied."""


def apply_fixes(text: str, fixes: list[Fix]) -> tuple[str, list[Fix]]:
    """Apply ``fixes`` to ``text``; returns the new text and the fixes that applied."""
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        raise FixError(f"LibCST cannot parse the file: {str(error).splitlines()[0]}") from None
    transformer = CallEditor(fixes)
    new_module = MetadataWrapper(module, unsafe_skip_copy=True).visit(transformer)
    return new_module.code, transformer.applied_fixes()


class CallEditor(cst.CSTTransformer):
    """Edits the arguments of calls located by their source span."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, fixes: list[Fix]) -> None:
        super().__init__()
        self.edits: dict[Span, list[tuple[Fix, Edit]]] = defaultdict(list)
        for fix in fixes:
            for edit in fix.edits:
                self.edits[edit.call].append((fix, edit))
        self.failed: set[int] = set()
        self.done: set[int] = set()
        self._fixes = fixes

    def applied_fixes(self) -> list[Fix]:
        return [fix for fix in self._fixes if id(fix) in self.done and id(fix) not in self.failed]

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        position = self.get_metadata(PositionProvider, original_node)
        span = Span(position.start.line, position.start.column, position.end.line, position.end.column)
        pending = self.edits.pop(span, None)
        if not pending:
            return updated_node
        node = updated_node
        for fix, edit in pending:
            try:
                node = _apply(node, edit)
            except FixError:
                self.failed.add(id(fix))
                return updated_node
            self.done.add(id(fix))
        return node


def _apply(call: cst.Call, edit: Edit) -> cst.Call:
    if isinstance(edit, AddKeywordArgument):
        return add_keyword_argument(call, edit.keyword, cst.parse_expression(edit.value))
    if isinstance(edit, ReplaceArgument):
        return replace_argument(call, edit.keyword, edit.position, lambda _: cst.parse_expression(edit.value))
    if isinstance(edit, GuardArgumentWithTraining):
        flag = cst.parse_expression(f"{edit.self_name}.training")
        otherwise = cst.parse_expression(edit.otherwise)
        return replace_argument(call, edit.keyword, edit.position, lambda value: _if_expression(value, flag, otherwise))
    raise FixError(f"unknown edit {edit!r}")


def _if_expression(value: cst.BaseExpression, test: cst.BaseExpression, otherwise: cst.BaseExpression) -> cst.IfExp:
    if isinstance(value, (cst.IfExp, cst.Lambda, cst.NamedExpr, cst.Yield)) and not value.lpar:
        value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.IfExp(test=test, body=value, orelse=otherwise)


def _find_argument(call: cst.Call, keyword: str, position: int | None) -> int:
    for index, arg in enumerate(call.args):
        if arg.keyword is not None and arg.keyword.value == keyword:
            return index
    if position is not None and position < len(call.args):
        arg = call.args[position]
        if arg.keyword is None and not arg.star and all(not a.star for a in call.args[:position]):
            return position
    raise FixError(f"argument {keyword!r} not found")


def replace_argument(call: cst.Call, keyword: str, position: int | None, build: object) -> cst.Call:
    """Replace one argument's value with ``build(old_value)``."""
    index = _find_argument(call, keyword, position)
    arg = call.args[index]
    new_value = build(arg.value)  # type: ignore[operator]
    args = list(call.args)
    args[index] = arg.with_changes(value=new_value)
    return call.with_changes(args=args)


def add_keyword_argument(call: cst.Call, keyword: str, value: cst.BaseExpression) -> cst.Call:
    """Append ``keyword=value``, in the layout the call already uses.

    One-line calls get ``, keyword=value``; exploded calls get a new line
    with the same indentation, and a trailing comma when the call had one.
    Comments stay on the line they were on.
    """
    new_arg = cst.Arg(
        keyword=cst.Name(keyword),
        value=value,
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    args = list(call.args)
    if not args:
        return call.with_changes(args=[new_arg])
    last = args[-1]
    separator = _separator_before_last(call)
    multiline = isinstance(separator, cst.ParenthesizedWhitespace)
    if isinstance(last.comma, cst.Comma):
        # ``x, p,)`` → the new argument takes over the trailing comma and what follows it.
        trailing = last.comma.whitespace_after
        if multiline and isinstance(trailing, cst.ParenthesizedWhitespace):
            args[-1] = last.with_changes(
                comma=last.comma.with_changes(whitespace_after=_next_line(trailing, separator))
            )
            new_arg = new_arg.with_changes(comma=last.comma.with_changes(whitespace_after=_close_line(trailing)))
        else:
            args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=cst.SimpleWhitespace(" ")))
            new_arg = new_arg.with_changes(comma=last.comma.with_changes(whitespace_after=trailing))
    else:
        after = last.whitespace_after_arg
        if multiline and isinstance(after, cst.ParenthesizedWhitespace):
            # ``p=0.1  # note\n)`` → ``p=0.1,  # note\n    training=...\n)``
            args[-1] = last.with_changes(
                comma=cst.Comma(whitespace_after=_next_line(after, separator)),
                whitespace_after_arg=cst.SimpleWhitespace(""),
            )
            new_arg = new_arg.with_changes(whitespace_after_arg=_close_line(after))
        else:
            args[-1] = last.with_changes(
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
                whitespace_after_arg=cst.SimpleWhitespace(""),
            )
            new_arg = new_arg.with_changes(whitespace_after_arg=after)
    args.append(new_arg)
    return call.with_changes(args=args)


def _separator_before_last(call: cst.Call) -> cst.BaseParenthesizableWhitespace:
    """The whitespace in front of the last argument (how arguments are laid out)."""
    if len(call.args) >= 2:
        comma = call.args[-2].comma
        if isinstance(comma, cst.Comma):
            return comma.whitespace_after
    return call.whitespace_before_args


def _next_line(
    current: cst.ParenthesizedWhitespace, separator: cst.BaseParenthesizableWhitespace
) -> cst.ParenthesizedWhitespace:
    """Keep the current line's comment, then start the next argument like the others."""
    assert isinstance(separator, cst.ParenthesizedWhitespace)
    return cst.ParenthesizedWhitespace(
        first_line=current.first_line, empty_lines=[], indent=separator.indent, last_line=separator.last_line
    )


def _close_line(current: cst.ParenthesizedWhitespace) -> cst.ParenthesizedWhitespace:
    """End the new argument's line and indent the closing bracket as before."""
    return current.with_changes(first_line=cst.TrailingWhitespace())
