"""A small real service built from fastkit: users, JWT login, todos with pagination."""
