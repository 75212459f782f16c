"""The CI half of debops-ci: providers, change detection, versioning, building.

- `providers`: which CI runs us and what event it is
- `scan`: the packages of a repository and those a change touches
- `versioning`: CI versions and their changelog entries
- `build`: `dpkg-buildpackage` in a build directory
- `pipeline`: `run_ci`, all of the above plus publishing
- `logger`: folded CI log output and the job summary
- `github_action`: the GitHub Action's inputs -> command line, output
  -> step outputs and summary
"""
