"""The crew's own schedule: routines, heartbeats, room activity and work logs."""
