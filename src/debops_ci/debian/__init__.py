"""Debian formats: .deb inspection, control data, versions, changelogs."""
