"""Checks for lesson 03 (filled in with the lesson)."""
