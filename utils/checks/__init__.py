"""Checks: run the graders' checks against the app in a headless browser before publishing, and repair what fails."""
