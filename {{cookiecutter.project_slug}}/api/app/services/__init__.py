"""Operations shared by routes and commands."""
