"""Rooms: where conversations live, who is in them, which chats map to them, and their tasks."""
