//! The events that start the planner, in the shapes Lambda delivers them: an S3 event
//! notification (`Records[].s3`), an EventBridge "Object Created" event from S3, and an
//! EventBridge "Scheduled Event".

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::S3Event;
use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum PlannerTrigger {
    /// A run file was written to `s3://bucket/key`.
    RunFile { bucket: String, key: String },
    /// A schedule fired at `time`: plan the period that has just ended.
    Scheduled { time: DateTime<Utc> },
}

/// S3 notifications URL-encode keys (`+` for space, `%XX` for the rest).
pub fn decode_s3_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            // Hex digits read as bytes: slicing the text could split a multi-byte
            // character (found by fuzzing).
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every trigger in a planner event, or an error saying what the event was.
pub fn planner_triggers(event: &Value) -> Result<Vec<PlannerTrigger>, crate::ServerlessError> {
    planner_triggers_or_why(event).map_err(crate::ServerlessError::Event)
}

fn planner_triggers_or_why(event: &Value) -> Result<Vec<PlannerTrigger>, String> {
    if event.get("Records").is_some() {
        let s3: S3Event =
            serde_json::from_value(event.clone()).map_err(|e| format!("unreadable S3 event notification: {e}"))?;
        let mut out = Vec::new();
        for r in s3.records {
            if !r.event_name.as_deref().unwrap_or_default().starts_with("ObjectCreated") {
                tracing::info!(
                    event = r.event_name.as_deref().unwrap_or_default(),
                    "ignoring S3 event that is not a creation"
                );
                continue;
            }
            let bucket = r.s3.bucket.name.unwrap_or_default();
            let key = decode_s3_key(r.s3.object.key.as_deref().unwrap_or_default());
            if bucket.is_empty() || key.is_empty() {
                return Err("S3 event record without a bucket name or object key".into());
            }
            out.push(PlannerTrigger::RunFile { bucket, key });
        }
        return Ok(out);
    }
    if event.get("detail-type").is_some() {
        let eb: EventBridgeEvent<Value> =
            serde_json::from_value(event.clone()).map_err(|e| format!("unreadable EventBridge event: {e}"))?;
        return match eb.detail_type.as_str() {
            "Object Created" => {
                let bucket = eb.detail["bucket"]["name"].as_str().unwrap_or_default().to_string();
                let key = decode_s3_key(eb.detail["object"]["key"].as_str().unwrap_or_default());
                if bucket.is_empty() || key.is_empty() {
                    return Err("EventBridge 'Object Created' event without detail.bucket.name or detail.object.key".into());
                }
                Ok(vec![PlannerTrigger::RunFile { bucket, key }])
            }
            "Scheduled Event" => Ok(vec![PlannerTrigger::Scheduled { time: eb.time.unwrap_or_else(Utc::now) }]),
            other => Err(format!(
                "EventBridge event of type '{other}' from '{}': the planner takes 'Object Created' and 'Scheduled Event'",
                eb.source
            )),
        };
    }
    Err(format!(
        "not a planner event (expected an S3 notification or an EventBridge event): {}",
        event.to_string().chars().take(200).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded() {
        assert_eq!(decode_s3_key("runs/gm+s2%3A2023.yaml"), "runs/gm s2:2023.yaml");
        assert_eq!(decode_s3_key("runs/100%"), "runs/100%");
        // A '%' before a multi-byte character is kept, not sliced through (a fuzz find).
        assert_eq!(decode_s3_key("a%:\u{514}b"), "a%:\u{514}b");
    }

    #[test]
    fn unknown_events_are_named() {
        let e = planner_triggers(&serde_json::json!({"hello": 1})).unwrap_err().to_string();
        assert!(e.contains("not a planner event"), "{e}");
        let e = planner_triggers(&serde_json::json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}})).unwrap_err().to_string();
        assert!(e.contains("EC2 Instance"), "{e}");
    }
}
