"""Where users meet nnlint besides the CLI: flake8, the language server, LibCST codemods."""
