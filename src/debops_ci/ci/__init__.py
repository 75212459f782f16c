"""The CI half of debops-ci: providers, change detection, versioning, building.

- :mod:`~debops_ci.ci.providers`: which CI runs us and what event it is
- :mod:`~debops_ci.ci.scan`: the packages of a repository and those a change touches
- :mod:`~debops_ci.ci.versioning`: CI versions and their changelog entries
- :mod:`~debops_ci.ci.build`: ``dpkg-buildpackage`` in a build directory
- :mod:`~debops_ci.ci.pipeline`: ``run_ci``, all of the above plus publishing
- :mod:`~debops_ci.ci.logger`: folded CI log output and the job summary
"""
