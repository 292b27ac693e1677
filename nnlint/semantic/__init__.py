"""The project-wide semantic model between the per-file engine and the rules.

- :mod:`~nnlint.semantic.values`: symbolic values of expressions (what a name, call or attribute holds);
- :mod:`~nnlint.semantic.facts` and :mod:`~nnlint.semantic.extract`: per-file facts (cached with the file);
- :mod:`~nnlint.semantic.model`: all files' facts resolved across files on every run;
- :mod:`~nnlint.semantic.requirements`: the questions a finding asks the model before it is reported.
"""
