"""Blueprints: routes parse input, call the logic, and turn its errors into HTTP answers."""
