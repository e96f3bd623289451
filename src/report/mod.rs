//! Reports: one model built from engine events, rendered as a terminal table, JSON, JUnit and Markdown.
