"""The five steps every message goes through: tag -> intent -> dispatch -> collect -> final."""
