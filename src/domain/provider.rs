use std::fmt;
use std::str::FromStr;

/// The voice platform a webhook came from. Only `webhooks/` decides which one;
/// inner code carries it along for the call log and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Retell,
    Vapi,
    #[serde(rename = "elevenlabs")]
    ElevenLabs,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Retell, Provider::Vapi, Provider::ElevenLabs];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Retell => "retell",
            Provider::Vapi => "vapi",
            Provider::ElevenLabs => "elevenlabs",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown provider `{s}`; expected retell, vapi or elevenlabs"))
    }
}
