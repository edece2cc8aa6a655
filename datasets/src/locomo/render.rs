//! Text of turns and sessions exactly as the official LoCoMo QA prompt builds it
//! (`task_eval/gpt_utils.py::get_input_context`, described in README §1.5).

use super::{Conversation, Session, Turn};

/// One turn as the official prompt writes it: `<speaker> said, "<text>"` and a newline;
/// for a turn with a BLIP caption, ` and shared <caption>.` follows on the next line;
/// then a final newline.
///
/// The newline between the quote and ` and shared` is the official code's behaviour
/// (it appends the caption after the line break), reproduced on purpose.
pub fn render_turn(turn: &Turn) -> String {
    let mut text = format!("{} said, \"{}\"\n", turn.speaker, turn.text);
    if let Some(caption) = &turn.blip_caption {
        text.push_str(" and shared ");
        text.push_str(caption);
        text.push('.');
    }
    text.push('\n');
    text
}

/// One session as the official prompt writes it: `DATE: <raw date>\nCONVERSATION:\n`
/// followed by its turns in order.
pub fn render_session(session: &Session) -> String {
    let mut text = format!("DATE: {}\nCONVERSATION:\n", session.date_time.raw);
    for turn in &session.turns {
        text.push_str(&render_turn(turn));
    }
    text
}

/// The whole conversation as the official full-context prompt holds it when nothing is
/// truncated: sessions **newest first** (the official loop prepends each later session),
/// each as [`render_session`], followed by two newlines per session (the official loop
/// appends `"\n\n"` before each session and prepends everything else).
pub fn render_full_context(conversation: &Conversation) -> String {
    let mut text = String::new();
    for session in conversation.sessions.iter().rev() {
        text.push_str(&render_session(session));
    }
    text.push_str(&"\n\n".repeat(conversation.sessions.len()));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locomo::{LocomoDateTime, parse_locomo_date_time};

    fn turn(text: &str, caption: Option<&str>) -> Turn {
        Turn {
            speaker: "Caroline".into(),
            dia_id: "D1:1".into(),
            text: text.into(),
            img_url: vec![],
            blip_caption: caption.map(String::from),
            query: None,
            re_download: false,
        }
    }

    #[test]
    fn plain_and_image_turns() {
        assert_eq!(render_turn(&turn("Hi Mel!", None)), "Caroline said, \"Hi Mel!\"\n\n");
        assert_eq!(render_turn(&turn("Look!", Some("a photo of a dog"))), "Caroline said, \"Look!\"\n and shared a photo of a dog.\n");
    }

    #[test]
    fn full_context_is_newest_first() {
        let session = |number: u32, raw: &str, text: &str| Session {
            number,
            date_time: LocomoDateTime { raw: raw.into(), value: parse_locomo_date_time(raw).unwrap() },
            turns: vec![turn(text, None)],
        };
        let conversation = Conversation {
            speaker_a: "Caroline".into(),
            speaker_b: "Melanie".into(),
            sessions: vec![session(1, "1:56 pm on 8 May, 2023", "one"), session(2, "1:14 pm on 25 May, 2023", "two")],
            orphan_session_dates: vec![],
        };
        assert_eq!(
            render_full_context(&conversation),
            "DATE: 1:14 pm on 25 May, 2023\nCONVERSATION:\nCaroline said, \"two\"\n\n\
             DATE: 1:56 pm on 8 May, 2023\nCONVERSATION:\nCaroline said, \"one\"\n\n\n\n\n\n"
        );
    }
}
