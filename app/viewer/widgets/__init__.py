"""Widgets of the scanner viewer. They show data handed to them and emit what the user asks for;
they never touch the engine (the session controller does)."""
