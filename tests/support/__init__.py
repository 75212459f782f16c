"""Reusable end-to-end test harness: real servers, real keys, real packages, real apt.

Nothing here is mocked. Each helper starts what it needs on 127.0.0.1 only, keeps its
state in a private temporary directory, and cleans up after itself.
"""
