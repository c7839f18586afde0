#!/bin/sh
# Runs every test file with Node's test runner (Node 20 does not expand globs itself).
set -e
cd "$(dirname "$0")/.."
files=$(find test src -name '*.test.ts' -not -path '*/node_modules/*' | sort)
exec node --import tsx --test --test-concurrency=1 $files
