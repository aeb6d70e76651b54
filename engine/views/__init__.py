"""Every output form of a recorded trace: JSON and the [expect] checks (json), the annotated
Markdown listing (markdown), and the decoders that turn raw values into words (decode)."""
