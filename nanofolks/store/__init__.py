"""Every SQL statement lives here, behind small repositories named by what they keep."""
