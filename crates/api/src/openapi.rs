//! The OpenAPI document: every routed operation, and nothing that is not routed (the route
//! test checks both directions).

use utoipa::OpenApi;

use crate::error;
use crate::routes;
use crate::stored_run;

#[derive(OpenApi)]
#[openapi(
    info(title = "Boai internal API", description = "Donor registry and HLA matching. Every /v1 route needs `Authorization: Bearer <token>`; errors are application/problem+json."),
    paths(
        routes::admin::healthz, routes::admin::readyz, routes::admin::metrics,
        routes::admin::create_station, routes::admin::list_stations,
        routes::admin::read_audit, routes::admin::hla_expand,
        routes::people::create_person, routes::people::list_people, routes::people::set_disabled, routes::people::set_password,
        routes::donors::enrol_donor, routes::donors::get_donor, routes::donors::update_donor,
        routes::donors::list_donors,
        routes::donors::get_identity, routes::donors::change_status,
        routes::donors::record_typing, routes::donors::list_typings,
        routes::samples::record_sample, routes::samples::list_samples, routes::samples::set_sample_state,
        routes::samples::sample_list,
        routes::consents::give_consent, routes::consents::list_consents, routes::consents::withdraw_consent,
        routes::patients::register_patient, routes::patients::get_patient, routes::patients::list_patients,
        routes::searches::create_search, routes::searches::get_search, routes::searches::search_results,
        routes::searches::search_results_csv, routes::searches::search_results_gl, routes::searches::list_runs,
        routes::searches::rerun_search, routes::searches::set_search_state,
        routes::searches::list_searches, routes::searches::patient_searches,
        routes::requests::open_request, routes::requests::close_request, routes::requests::record_milestone,
        routes::requests::list_requests, routes::requests::get_request,
        routes::donations::record_donation, routes::donations::followups_due, routes::donations::record_followup,
        routes::donations::list_donations, routes::donations::list_followups,
        routes::organ::register_organ_donation, routes::organ::change_organ_donation,
        routes::organ::revoke_organ_donation, routes::organ::import_organ_registrations,
        routes::organ::list_organ_registrations, routes::organ::get_organ_registration,
        routes::organ_cases::record_organ_case, routes::organ_cases::list_organ_cases,
        routes::organ_cases::get_organ_case, routes::organ_cases::complete_organ_case,
        routes::organ_cases::cancel_organ_case,
        routes::contacts::record_contact, routes::contacts::contact_history,
        routes::contacts::reconfirmation_list,
        routes::care::record_care, routes::care::list_care,
        routes::campaigns::create_campaign, routes::campaigns::list_campaigns,
        routes::campaigns::get_campaign,
        routes::reports::yearly_report,
        routes::holidays::list_holidays, routes::holidays::add_holiday, routes::holidays::remove_holiday,
        routes::jobs::run_daily,
        routes::typings::import_hml,
    ),
    components(schemas(error::Problem, error::FieldError, stored_run::SearchRun, stored_run::SearchHitOut, stored_run::LocusDetail, stored_run::HitProbability)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
