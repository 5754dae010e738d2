"""Pure domain rules: no I/O, no ORM, no GraphQL, no clock, no randomness."""
