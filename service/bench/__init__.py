"""The benchmark behind the README's figures (`make bench`): see service/bench/__main__.py."""
