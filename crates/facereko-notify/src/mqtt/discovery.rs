//! Home Assistant MQTT discovery messages for one door.

use serde_json::json;

use super::topics::{Msg, Topics};

/// Home Assistant MQTT discovery: the door as a lock, the system as a switch, the last attempt as a
/// sensor, all unavailable when the retained state says offline.
pub(crate) fn discovery(prefix: &str, door_id: &str, t: &Topics) -> Vec<Msg> {
    let node = format!(
        "facereko_{}",
        door_id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let device = json!({
        "identifiers": [node],
        "name": format!("FaceReko {door_id}"),
        "manufacturer": "FaceReko",
        "model": "door access controller",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let availability = json!([{
        "topic": t.state,
        "value_template": "{{ 'online' if value_json.online else 'offline' }}",
        "payload_available": "online",
        "payload_not_available": "offline",
    }]);
    let configs = [
        (
            "lock",
            "door",
            json!({
                "name": "Door",
                "unique_id": format!("{node}_door"),
                "state_topic": t.state,
                "value_template": "{{ 'UNLOCKED' if value_json.door == 'unlocked' else 'LOCKED' }}",
                "command_topic": t.command,
                "payload_unlock": "UNLOCK",
                "payload_lock": "LOCK",
                "availability": availability,
                "device": device,
            }),
        ),
        (
            "switch",
            "armed",
            json!({
                "name": "System armed",
                "unique_id": format!("{node}_armed"),
                "state_topic": t.state,
                "value_template": "{{ 'ON' if value_json.armed else 'OFF' }}",
                "command_topic": t.command,
                "payload_on": "ARM",
                "payload_off": "DISARM",
                "availability": availability,
                "device": device,
            }),
        ),
        (
            "sensor",
            "last_attempt",
            json!({
                "name": "Last attempt",
                "unique_id": format!("{node}_last_attempt"),
                "state_topic": t.attempt,
                "value_template": "{{ value_json.outcome }}",
                "json_attributes_topic": t.attempt,
                "json_attributes_template":
                    "{{ {'person': value_json.person, 'outcome': value_json.outcome, \
                     'similarity': value_json.similarity, 'time': value_json.time, \
                     'event_id': value_json.event_id} | tojson }}",
                "icon": "mdi:account-lock",
                "availability": availability,
                "device": device,
            }),
        ),
    ];
    configs
        .into_iter()
        .map(|(component, object, config)| Msg {
            topic: format!("{prefix}/{component}/{node}/{object}/config"),
            payload: config.to_string().into_bytes(),
            retain: true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_describes_lock_switch_and_sensor() {
        let t = Topics::new("facereko", "front");
        let msgs = discovery("homeassistant", "front", &t);
        let topics: Vec<&str> = msgs.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/lock/facereko_front/door/config",
                "homeassistant/switch/facereko_front/armed/config",
                "homeassistant/sensor/facereko_front/last_attempt/config",
            ]
        );
        assert!(msgs.iter().all(|m| m.retain));
        let lock: serde_json::Value = serde_json::from_slice(&msgs[0].payload).unwrap();
        assert_eq!(lock["command_topic"], "facereko/front/command");
        assert_eq!(lock["availability"][0]["topic"], "facereko/front/state");
        assert_eq!(lock["device"]["identifiers"][0], "facereko_front");
    }
}
