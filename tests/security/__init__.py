"""Acceptance tests of mmtpr's handling of hostile input (the tests
act as an attacker: every hostile file is built at test time)."""
