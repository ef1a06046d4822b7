# SPDX-License-Identifier: GPL-2.0-only
# The alerting rules and their unit tests (docs/operations.md):
#   make rules-check   promtool check rules, then promtool test rules over
#                      tests/rules/*.test.yml (each alert firing and not)
# promtool comes with the Debian package prometheus (scripts/deps.sh, test).
PROMTOOL ?= promtool
RULES    := dist/prometheus/echosrv-rules.yml

rules-check:
	$(PROMTOOL) check rules $(RULES)
	$(PROMTOOL) test rules tests/rules/*.test.yml

.PHONY: rules-check
