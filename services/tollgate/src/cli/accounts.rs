//! `tollgate operator …`: the admin web UI's operator accounts.

use std::io::BufRead;

use serde_json::json;
use tollgate_store::{Accounts, Operator, Store};

use super::args::OperatorCommand;
use super::output::{print, Failure};
use crate::settings::env::Environment;

const PASSWORD_ENV: &str = "TOLLGATE_OPERATOR_PASSWORD";

/// The password: from `TOLLGATE_OPERATOR_PASSWORD`, else the first line of standard input
/// (pipe it in; nothing is echoed because nothing is typed at a prompt).
fn password(env: &Environment) -> Result<String, Failure> {
    if let Some(p) = env.get(PASSWORD_ENV) {
        return Ok(p.to_owned());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Runtime(format!("reading the password from standard input: {e}")))?;
    let p = line.trim_end_matches(['\r', '\n']).to_owned();
    if p.is_empty() {
        return Err(Failure::Usage(format!(
            "no password: set {PASSWORD_ENV} or give it on standard input"
        )));
    }
    Ok(p)
}

fn view(o: &Operator) -> serde_json::Value {
    json!({"object": "operator", "name": o.name, "role": o.role, "status": o.status,
        "created_at_ms": o.created_at_ms})
}

pub async fn operator(
    store: &Store,
    env: &Environment,
    command: &OperatorCommand,
) -> Result<(), Failure> {
    use crate::accounts::{create_operator, update_operator};
    let done = match command {
        OperatorCommand::Create { name, role } => {
            create_operator(store, name, role, password(env)?).await?
        }
        OperatorCommand::List => {
            let all: Vec<serde_json::Value> =
                store.list_operators().await?.iter().map(view).collect();
            return print(&json!({"object": "list", "data": all}));
        }
        OperatorCommand::SetPassword { name } => {
            update_operator(store, name, Some(password(env)?), None, None).await?
        }
        OperatorCommand::SetRole { name, role } => {
            update_operator(store, name, None, Some(role), None).await?
        }
        OperatorCommand::Disable { name } => {
            update_operator(store, name, None, None, Some(false)).await?
        }
        OperatorCommand::Enable { name } => {
            update_operator(store, name, None, None, Some(true)).await?
        }
    };
    print(&view(&done))
}
