"""The crew: teams, bots and their personas (soul, identity, role card)."""
