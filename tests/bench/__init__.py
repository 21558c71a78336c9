"""The benchmark behind the README's figures (`make bench`): see tests/bench/__main__.py."""
