"""debops-ci: build Debian packages in CI and publish them into a signed APT archive."""

__version__ = "0.1.0"
