//! The sandbox provider's stand-in for the payer's bank app:
//! `POST /api/sandbox/pix` pays a Pix "copia e cola" code, as a fan's bank
//! would after they paste it. The provider then tells the server (see
//! `confirm_pix` in `mod.rs`), which places the order; this answer says
//! only that the bank paid, never that an order was placed. A real
//! provider has no such route: fans pay in their own bank.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::App;
use super::error::ApiError;
use super::reply::{Answer, answer};
use crate::payments::pix::MAX_CODE;
use crate::payments::sandbox::PixRefusal;

/// `{"code": "000201…"}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixPayment {
    code: String,
}

/// `POST /api/sandbox/pix`
pub async fn pay_pix(app: &App, body: PixPayment) -> Answer {
    if body.code.len() > MAX_CODE {
        return Err(ApiError::bad_request(
            "invalid_pix_code",
            format!("a Pix code has at most {MAX_CODE} characters"),
        ));
    }
    let now_ms = app.clock.now_ms();
    match app.sandbox.pay_pix(&body.code, now_ms).await {
        Ok(_) => {
            #[derive(Serialize)]
            struct Paid {
                status: &'static str,
            }
            answer(StatusCode::OK, &Paid { status: "paid" })
        }
        Err(PixRefusal::Code(error)) => {
            Err(ApiError::bad_request("invalid_pix_code", error.to_string()))
        }
        Err(PixRefusal::Unknown) => Err(ApiError::not_found("no Pix charge has this code")),
        Err(refusal @ PixRefusal::Lapsed) => Err(ApiError::new(
            StatusCode::GONE,
            "pix_expired",
            refusal.to_string(),
        )),
        Err(refusal @ PixRefusal::Paid) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "pix_already_paid",
            refusal.to_string(),
        )),
        Err(PixRefusal::Gateway(error)) => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "provider_unavailable",
            message: error.to_string(),
            retry_after_s: Some(1),
        }),
    }
}
