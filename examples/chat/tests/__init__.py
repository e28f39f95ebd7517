"""The starter's tests: ``pytest`` from the project root."""
