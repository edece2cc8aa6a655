//! The LLM-as-a-judge score "J" that Mem0 (arXiv:2504.19413) and Memory-R1 report on LoCoMo.
//! It is **not** the official LoCoMo metric (that is token F1, see the parent module).
//!
//! Protocol (mem0ai/mem0 `evaluation/metrics/llm_judge.py`, Apache-2.0): one user message
//! with the prompt below, temperature 0, the judge model `gpt-4o-mini`; the reply is a JSON
//! object whose `"label"` is `CORRECT` (1) or `WRONG` (0); category 5 (adversarial) is
//! skipped. The prompt wording is reproduced because the judge's verdicts depend on it (the
//! typographic quotes ’ around CORRECT/WRONG/gold are in the original).
//!
//! Upstream parses the reply strictly as JSON. Small local judges often do not write valid
//! JSON, so [`parse_judge_label`] also accepts a bare `CORRECT` / `WRONG` word and reports
//! how it decided ([`JudgeLabel::parsed_from_json`]).

/// The judge model Mem0's published J numbers use.
pub const MEM0_JUDGE_MODEL: &str = "gpt-4o-mini";

/// Mem0's J prompt for one question, gold answer and generated answer.
pub fn judge_prompt(question: &str, gold_answer: &str, generated_answer: &str) -> String {
    format!(
        "\nYour task is to label an answer to a question as ’CORRECT’ or ’WRONG’. You will be given the following data:\n    \
(1) a question (posed by one user to another user), \n    \
(2) a ’gold’ (ground truth) answer, \n    \
(3) a generated answer\n\
which you will score as CORRECT/WRONG.\n\n\
The point of the question is to ask about something one user should know about the other user based on their prior conversations.\n\
The gold answer will usually be a concise and short answer that includes the referenced topic, for example:\n\
Question: Do you remember what I got the last time I went to Hawaii?\n\
Gold answer: A shell necklace\n\
The generated answer might be much longer, but you should be generous with your grading - as long as it touches on the same topic as the gold answer, it should be counted as CORRECT. \n\n\
For time related questions, the gold answer will be a specific date, month, year, etc. The generated answer might be much longer or use relative time references (like \"last Tuesday\" or \"next month\"), but you should be generous with your grading - as long as it refers to the same date or time period as the gold answer, it should be counted as CORRECT. Even if the format differs (e.g., \"May 7th\" vs \"7 May\"), consider it CORRECT if it's the same date.\n\n\
Now it's time for the real question:\n\
Question: {question}\n\
Gold answer: {gold_answer}\n\
Generated answer: {generated_answer}\n\n\
First, provide a short (one sentence) explanation of your reasoning, then finish with CORRECT or WRONG. \n\
Do NOT include both CORRECT and WRONG in your response, or it will break the evaluation script.\n\n\
Just return the label CORRECT or WRONG in a json format with the key as \"label\".\n"
    )
}

/// A parsed judge verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgeLabel {
    /// True for CORRECT.
    pub correct: bool,
    /// True when the label came from a JSON object's `"label"` (upstream's only way);
    /// false when it came from a bare word.
    pub parsed_from_json: bool,
}

/// Reads a judge reply: the first JSON object (`{...}`) with a string `"label"` decides
/// (`CORRECT`, compared case-insensitively after trimming, is correct; anything else is
/// wrong). Without one, the reply's words decide: exactly one of the words `correct` /
/// `wrong` (case-insensitive; `incorrect` counts as `wrong`) present gives that label.
/// Returns `None` when the reply says neither or both.
pub fn parse_judge_label(reply: &str) -> Option<JudgeLabel> {
    for (start, _) in reply.match_indices('{') {
        let Some(len) = reply[start..].find('}') else { break };
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&reply[start..=start + len]) {
            if let Some(serde_json::Value::String(label)) = map.get("label") {
                return Some(JudgeLabel { correct: label.trim().eq_ignore_ascii_case("correct"), parsed_from_json: true });
            }
        }
    }
    let words: Vec<String> = reply.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let says_correct = words.iter().any(|w| w == "correct");
    let says_wrong = words.iter().any(|w| w == "wrong" || w == "incorrect");
    match (says_correct, says_wrong) {
        (true, false) => Some(JudgeLabel { correct: true, parsed_from_json: false }),
        (false, true) => Some(JudgeLabel { correct: false, parsed_from_json: false }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_carries_the_three_fields_once() {
        let p = judge_prompt("When did Mel paint?", "May 2023", "in May");
        assert!(p.contains("Question: When did Mel paint?\nGold answer: May 2023\nGenerated answer: in May\n"));
        assert_eq!(p.matches("Generated answer:").count(), 1);
        assert!(p.starts_with("\nYour task is to label") && p.ends_with("with the key as \"label\".\n"));
    }

    #[test]
    fn labels_from_json_then_words() {
        let json = |r: &str| parse_judge_label(r).map(|l| (l.correct, l.parsed_from_json));
        assert_eq!(json("It matches. {\"label\": \"CORRECT\"}"), Some((true, true)));
        assert_eq!(json("```json\n{\"label\": \"WRONG\"}\n```"), Some((false, true)));
        // JSON wins over words that contradict it.
        assert_eq!(json("The answer is correct. {\"label\": \"WRONG\"}"), Some((false, true)));
        // A brace that is not JSON is skipped.
        assert_eq!(json("{oops} CORRECT"), Some((true, false)));
        assert_eq!(json("This is INCORRECT"), Some((false, false)));
        assert_eq!(json("correct or wrong"), None);
        assert_eq!(json(""), None);
    }
}
