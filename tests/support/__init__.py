"""Helpers the tests share: projects, servers, checkers. No test module imports another."""
