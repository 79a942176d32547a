//! The topics of one door and one message to publish.

/// The topics of one door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    pub attempt: String,
    pub alarm: String,
    pub audit: String,
    pub test: String,
    pub state: String,
    pub command: String,
}

impl Topics {
    pub fn new(prefix: &str, door_id: &str) -> Self {
        let base = format!("{}/{door_id}", prefix.trim_matches('/'));
        Self {
            attempt: format!("{base}/attempt"),
            alarm: format!("{base}/alarm"),
            audit: format!("{base}/audit"),
            test: format!("{base}/test"),
            state: format!("{base}/state"),
            command: format!("{base}/command"),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}
