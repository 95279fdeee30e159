//! The accounts store the server runs on: reads from this node's copy of
//! the shared state, changes through the replicated log
//! (`replicated::Proposer`), so an account made on one node logs in on
//! any other, and a session ended on one is refused on all.
//!
//! An account's edit is a compare-and-set on the account as read (see
//! `replicated`): when another node's edit lands first, the edit is worked
//! out again on the account as it now is. The `change` that decides it
//! therefore runs again too (a TOTP code already accepted elsewhere is then
//! refused).

use std::io;
use std::sync::Arc;

use super::service::{AccountStore, Change};
use super::store::{Account, AccountError, Session, new_session, session_key};
use crate::replicated::{Outcome, Proposer, Write};

/// Tries of an edit that keeps meeting another node's edit first.
const EDIT_TRIES: usize = 8;

/// See the module documentation.
pub struct ReplicatedAccounts {
    proposer: Arc<Proposer>,
}

impl ReplicatedAccounts {
    /// Accounts through `proposer`.
    pub fn new(proposer: Arc<Proposer>) -> ReplicatedAccounts {
        ReplicatedAccounts { proposer }
    }

    fn local(&self) -> &super::Accounts {
        self.proposer.state().accounts()
    }
}

fn unexpected(outcome: &Outcome) -> io::Error {
    io::Error::other(format!("a change to accounts was applied as {outcome:?}"))
}

impl AccountStore for ReplicatedAccounts {
    fn create(
        &self,
        email: &str,
        password_hash: String,
        admin: bool,
        now_ms: u64,
    ) -> Result<Account, AccountError> {
        let outcome = self.proposer.propose(&Write::CreateAccount {
            email: email.to_owned(),
            password_hash,
            admin,
            created_ms: now_ms,
        })?;
        match outcome {
            Outcome::Created(id) => self.local().get(id)?.ok_or_else(|| {
                AccountError::Io(io::Error::other(format!("account {id} vanished")))
            }),
            Outcome::Taken => Err(AccountError::Taken),
            other => Err(AccountError::Io(unexpected(&other))),
        }
    }

    fn get(&self, id: u64) -> io::Result<Option<Account>> {
        self.local().get(id)
    }

    fn find(&self, email: &str) -> io::Result<Option<Account>> {
        self.local().find(email)
    }

    fn update(
        &self,
        id: u64,
        change: &mut dyn FnMut(&mut Account) -> Change,
    ) -> io::Result<Option<Account>> {
        for _ in 0..EDIT_TRIES {
            let before = self
                .local()
                .get(id)?
                .ok_or_else(|| io::Error::other(format!("no account {id}")))?;
            let mut after = before.clone();
            if change(&mut after) == Change::Refuse {
                return Ok(None);
            }
            let edit = Write::UpdateAccount {
                before: Box::new(before),
                after: Box::new(after.clone()),
            };
            match self.proposer.propose(&edit)? {
                Outcome::Done => return Ok(Some(after)),
                // Applied here by now, after the edit that beat it: read
                // again and decide again.
                Outcome::Conflict => continue,
                other => return Err(unexpected(&other)),
            }
        }
        Err(io::Error::other(format!(
            "account {id} kept changing under {EDIT_TRIES} edits"
        )))
    }

    fn create_session(
        &self,
        account: &Account,
        awaiting_code: bool,
        two_factor: bool,
        now_ms: u64,
    ) -> io::Result<(String, Session)> {
        let (token, session) = new_session(account, awaiting_code, two_factor, now_ms)?;
        let start = Write::StartSession {
            key: session_key(&token),
            session: session.clone(),
        };
        match self.proposer.propose(&start)? {
            Outcome::Done => Ok((token, session)),
            other => Err(unexpected(&other)),
        }
    }

    fn session(&self, token: &str, now_ms: u64) -> io::Result<Option<(Session, Account)>> {
        self.local().session(token, now_ms)
    }

    fn revoke_session(&self, token: &str) -> io::Result<()> {
        let end = Write::EndSession {
            key: session_key(token),
        };
        match self.proposer.propose(&end)? {
            Outcome::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicated::SharedState;
    use crate::runtime::{Attached, DataDir, ManualClock, Runtime, RuntimeOptions};

    /// A single node (a group of one voter) with the shared state attached.
    fn node(dir: &std::path::Path) -> (Runtime, Arc<Proposer>) {
        let db = DataDir::create(dir)
            .unwrap()
            .open_db(crate::COLUMN_FAMILIES)
            .unwrap();
        let shared = SharedState::open(db.clone()).unwrap();
        let mut options = RuntimeOptions::new(dir);
        options.attached = Some(Attached(shared.clone()));
        let clock = Arc::new(ManualClock::at(1_000));
        let runtime = Runtime::start_in(db, options, clock).unwrap();
        let proposer = Arc::new(Proposer::new(runtime.attacher(), shared));
        (runtime, proposer)
    }

    #[test]
    fn an_edit_that_loses_to_another_is_decided_again_on_the_account_as_it_now_is() {
        let dir = tempfile::tempdir().unwrap();
        let (_runtime, proposer) = node(dir.path());
        let store = ReplicatedAccounts::new(proposer.clone());
        let account = store.create("a@x.io", "hash".into(), false, 1).unwrap();
        // The rule of a TOTP step (the epoch stands for the last step
        // accepted): step 5 is taken once. Another node takes it between
        // this edit's read and its proposal.
        let mut decided_on = Vec::new();
        let edited = store
            .update(account.id, &mut |seen| {
                decided_on.push(seen.epoch);
                if decided_on.len() == 1 {
                    let mut elsewhere = seen.clone();
                    elsewhere.epoch = 5;
                    let first = Write::UpdateAccount {
                        before: Box::new(seen.clone()),
                        after: Box::new(elsewhere),
                    };
                    assert_eq!(proposer.propose(&first).unwrap(), Outcome::Done);
                }
                if seen.epoch >= 5 {
                    return Change::Refuse;
                }
                seen.epoch = 5;
                Change::Store
            })
            .unwrap();
        assert_eq!(edited, None, "the step was taken twice");
        assert_eq!(decided_on, [0, 5], "not decided again on the new account");
        assert_eq!(store.get(account.id).unwrap().unwrap().epoch, 5);
    }

    #[test]
    fn sessions_and_accounts_go_through_the_log_and_read_back_here() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, proposer) = node(dir.path());
        let store = ReplicatedAccounts::new(proposer);
        let account = store.create("b@x.io", "hash".into(), true, 1).unwrap();
        assert!(matches!(
            store.create("b@x.io", "other".into(), false, 2),
            Err(AccountError::Taken)
        ));
        let (token, session) = store.create_session(&account, false, true, 10).unwrap();
        assert_eq!(store.session(&token, 11).unwrap().unwrap().0, session);
        store.revoke_session(&token).unwrap();
        assert!(store.session(&token, 11).unwrap().is_none());
        // Every change is a record of the sale's log.
        let log = runtime.sale_log().unwrap();
        let attached = ingressoja_wal::read_from(&log, 1)
            .filter(|r| crate::runtime::log_entry::is_attached(&r.as_ref().unwrap().payload))
            .count();
        assert_eq!(attached, 4, "account, refused account, session, its end");
    }
}
