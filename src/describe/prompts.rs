//! What the LLM is asked for class descriptions, and how its answers become sentences, as CuPL and DCLIP publish
//! them (sarahpratt/CuPL `generate_image_prompts.py`; sachit-menon/classify_by_description_release
//! `generate_descriptors.py` and `descriptor_strings.py`).

use crate::scoring::descriptions::sentence;

/// CuPL's five ImageNet questions, exactly as published (two without a final mark); `{}` is the class.
pub const CUPL_QUESTIONS: [&str; 5] = [
    "Describe what {} looks like",
    "How can you identify {}?",
    "What does {} look like?",
    "Describe an image from the internet of {}",
    "A caption of an image of {}:",
];

/// The class with CuPL's article: "an" only before a name that starts with an upper-case vowel, as published (so
/// most lower-case names get "a": "a eel").
pub fn cupl_subject(class: &str) -> String {
    let class = class.replace('_', " ");
    let article = if class.starts_with(['A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
    format!("{article} {class}")
}

/// A CuPL question for a class: its `{}` filled with the class and its article.
pub fn cupl_question(question: &str, class: &str) -> String {
    question.replacen("{}", &cupl_subject(class), 1)
}

/// A CuPL answer as a sentence: the text before its first `.` (the published generation stops there), with
/// paragraph breaks removed and a `.` added, as published; surrounding white space trimmed (a chat model's answer
/// starts without the completion's leading space). An answer with no text before its first `.` gives none.
pub fn cupl_sentence(answer: &str) -> Option<String> {
    let first = answer.split('.').next().unwrap_or_default().replace("\n\n", "");
    let first = first.trim();
    (!first.is_empty()).then(|| format!("{first}."))
}

/// DCLIP's few-shot question for a class, exactly as published (the last question says "useful features").
pub fn dclip_prompt(class: &str) -> String {
    let class = class.replace('_', " ");
    format!(
        "Q: What are useful visual features for distinguishing a lemur in a photo?
A: There are several useful visual features to tell there is a lemur in a photo:
- four-limbed primate
- black, grey, white, brown, or red-brown
- wet and hairless nose with curved nostrils
- long tail
- large eyes
- furry bodies
- clawed hands and feet

Q: What are useful visual features for distinguishing a television in a photo?
A: There are several useful visual features to tell there is a television in a photo:
- electronic device
- black or grey
- a large, rectangular screen
- a stand or mount to support the screen
- one or more speakers
- a power cord
- input ports for connecting to other devices
- a remote control

Q: What are useful features for distinguishing a {class} in a photo?
A: There are several useful visual features to tell there is a {class} in a photo:
-
"
    )
}

/// DCLIP's descriptors in an answer: the lines that start with `- `, without it, as published (a line's trailing
/// white space trimmed); each as the sentence "A photo of a {class}, which is/has {descriptor}.".
pub fn dclip_sentences(answer: &str, class: &str) -> Vec<String> {
    answer
        .lines()
        .filter_map(|line| line.trim_end().strip_prefix("- "))
        .filter(|descriptor| !descriptor.trim().is_empty())
        .map(|descriptor| sentence(class, descriptor))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cupl_questions_take_the_published_article() {
        assert_eq!(cupl_question(CUPL_QUESTIONS[0], "eel"), "Describe what a eel looks like");
        assert_eq!(cupl_question(CUPL_QUESTIONS[1], "Egyptian_cat"), "How can you identify an Egyptian cat?");
        assert_eq!(cupl_question(CUPL_QUESTIONS[4], "tabby cat"), "A caption of an image of a tabby cat:");
    }

    #[test]
    fn cupl_answers_end_at_their_first_full_stop() {
        assert_eq!(cupl_sentence(" A tabby cat has stripes. It purrs."), Some("A tabby cat has stripes.".into()));
        assert_eq!(cupl_sentence("Stripes\n\nand whiskers"), Some("Stripesand whiskers.".into()));
        assert_eq!(cupl_sentence(". nothing first"), None);
        assert_eq!(cupl_sentence("   "), None);
    }

    #[test]
    fn dclip_keeps_the_dash_lines_as_sentences() {
        let prompt = dclip_prompt("sail_boat");
        assert!(prompt.contains("useful features for distinguishing a sail boat in a photo?\n"), "{prompt}");
        assert!(prompt.ends_with("tell there is a sail boat in a photo:\n-\n"), "{prompt}");
        let answer = "a mast\n- a mast\n- white sails  \n-no space\n- \n  - indented\nSure!";
        assert_eq!(
            dclip_sentences(answer, "sail boat"),
            ["A photo of a sail boat, which is a mast.", "A photo of a sail boat, which has white sails."]
        );
    }
}
