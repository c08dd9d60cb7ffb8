"""Checks for lesson 02 (filled in with the lesson)."""
