//! Authentication (anonymous, ticket, WAMP-CRA) as a state machine without I/O.
