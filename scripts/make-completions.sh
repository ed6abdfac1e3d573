#!/usr/bin/env bash
# Regenerate completions/ from the installed `synmotion` command (tests/test_cli.py checks they are current).
set -euo pipefail
cd "$(dirname "$0")/.."
for shell in bash zsh fish; do
  _SYNMOTION_COMPLETE="source_${shell}" synmotion > "completions/synmotion.${shell}"
done
