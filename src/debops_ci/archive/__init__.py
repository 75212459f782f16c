"""The APT archive: layout, indexes, Release files, and the publish transaction."""
