"""No drift between what Terraform deploys and what sumu-local executes.

sumu-local executes mapping-templates/routes.json and the template files beside it. This test reads
the WebSocket API that `terraform/local` applied to moto back through the API Gateway v2 API (as an
operator would with the AWS CLI) and asserts that its route selection expression, routes,
authorizer, integrations, request/response templates, integration and route responses and stage
variables are exactly that route table and those files, byte for byte.

Run by scripts/lib/terraform.sh after the apply, with:
  SUMU_MOTO_ENDPOINT  the moto server the stack was applied to
  SUMU_TF_API_ID      `terraform output -raw api_id`
  SUMU_TF_STAGE       `terraform output -raw stage`
  SUMU_TF_REGION      the provider's region (default us-east-1)
  SUMU_TF_STATE_JSON  `terraform show -json` of the applied state: moto 5.2.5 does not implement
                      GetRouteResponses, so route responses are found by the ids Terraform recorded
                      and each is then read back from moto with GetRouteResponse.
"""

import json
import os
import pathlib
import unittest

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "mapping-templates"
QUERY_PROTOCOL = "application/x-www-form-urlencoded"
ALWAYS_DEFAULT = "\\$default"  # the template selection expression that always picks "$default"


def template(name):
    return (TEMPLATES / name).read_text(encoding="utf-8")


def state_resources(state, kind):
    """Every resource of type `kind` in a `terraform show -json` document, in any module."""
    found, modules = [], [state.get("values", {}).get("root_module", {})]
    while modules:
        module = modules.pop()
        found.extend(r for r in module.get("resources", []) if r["type"] == kind)
        modules.extend(module.get("child_modules", []))
    return found


def paginate(call, **kwargs):
    """Every item of a paginated API Gateway v2 list call."""
    items, token = [], None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items.extend(page.get("Items", []))
        token = page.get("NextToken")
        if not token:
            return items


class DeployedApiMatchesRouteTable(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.region = os.environ.get("SUMU_TF_REGION", "us-east-1")
        cls.api_id = os.environ["SUMU_TF_API_ID"]
        cls.stage = os.environ["SUMU_TF_STAGE"]
        cls.client = boto3.client(
            "apigatewayv2",
            endpoint_url=os.environ["SUMU_MOTO_ENDPOINT"],
            region_name=cls.region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        cls.table = json.loads((TEMPLATES / "routes.json").read_text(encoding="utf-8"))
        cls.api = cls.client.get_api(ApiId=cls.api_id)
        cls.routes = {r["RouteKey"]: r for r in paginate(cls.client.get_routes, ApiId=cls.api_id)}
        state = json.loads(pathlib.Path(os.environ["SUMU_TF_STATE_JSON"]).read_text(encoding="utf-8"))
        cls.route_response_ids = [
            (r["values"]["route_id"], r["values"]["id"]) for r in state_resources(state, "aws_apigatewayv2_route_response")
        ]
        cls.integrations = {
            i["IntegrationId"]: i for i in paginate(cls.client.get_integrations, ApiId=cls.api_id)
        }

    def integration_of(self, route_key):
        target = self.routes[route_key].get("Target", "")
        self.assertTrue(target.startswith("integrations/"), f"{route_key}: target {target!r}")
        integration_id = target.removeprefix("integrations/")
        self.assertIn(integration_id, self.integrations, f"{route_key}: no integration {integration_id}")
        return self.integrations[integration_id]

    def test_api_is_websocket_with_the_route_selection_expression(self):
        self.assertEqual(self.api["ProtocolType"], "WEBSOCKET")
        self.assertEqual(self.api["RouteSelectionExpression"], self.table["route_selection_expression"])

    def test_route_set_is_exactly_the_route_table(self):
        self.assertEqual(set(self.routes), set(self.table["routes"]))
        # One integration per route, none left over.
        self.assertEqual(len(self.integrations), len(self.table["routes"]))

    def test_only_connect_is_authorized_by_the_query_string_token(self):
        for key, spec in self.table["routes"].items():
            route = self.routes[key]
            if spec.get("authorizer"):
                self.assertEqual(route.get("AuthorizationType"), "CUSTOM", key)
                authorizer = self.client.get_authorizer(ApiId=self.api_id, AuthorizerId=route["AuthorizerId"])
                self.assertEqual(authorizer["AuthorizerType"], "REQUEST")
                self.assertEqual(authorizer["IdentitySource"], ["route.request.querystring.authorization"])
            else:
                self.assertIn(route.get("AuthorizationType", "NONE"), ("NONE", None), key)

    def test_integrations_call_what_the_route_table_says(self):
        for key, spec in self.table["routes"].items():
            with self.subTest(route=key):
                wanted = spec["integration"]
                integration = self.integration_of(key)
                self.assertEqual(integration["IntegrationType"], wanted["type"])
                if wanted["type"] == "AWS":
                    self.assertEqual(
                        integration["IntegrationUri"],
                        f"arn:aws:apigateway:{self.region}:{wanted['service']}:action/{wanted['action']}",
                    )
                    self.assertEqual(integration["IntegrationMethod"], "POST")
                    self.assertRegex(integration.get("CredentialsArn", ""), r"^arn:aws:iam::\d{12}:role/")
                if wanted["type"] == "AWS_PROXY":
                    function = wanted.get("function", "presence")
                    self.assertRegex(integration["IntegrationUri"], rf":function:[^/]*-{function}/invocations$")
                parameters = integration.get("RequestParameters") or {}
                if wanted.get("content_type") == QUERY_PROTOCOL:
                    self.assertEqual(parameters, {"integration.request.header.Content-Type": f"'{QUERY_PROTOCOL}'"})
                else:
                    self.assertEqual(parameters, {})

    def test_request_templates_are_the_repository_files(self):
        for key, spec in self.table["routes"].items():
            with self.subTest(route=key):
                integration = self.integration_of(key)
                name = spec["integration"].get("request_template")
                if name is None:
                    self.assertFalse(integration.get("RequestTemplates"))
                    continue
                self.assertEqual(integration.get("RequestTemplates"), {"$default": template(name)})
                self.assertEqual(integration.get("TemplateSelectionExpression"), ALWAYS_DEFAULT)
                self.assertEqual(integration.get("PassthroughBehavior"), "NEVER")

    def test_integration_responses_are_the_repository_files(self):
        for key, spec in self.table["routes"].items():
            with self.subTest(route=key):
                integration = self.integration_of(key)
                responses = paginate(
                    self.client.get_integration_responses,
                    ApiId=self.api_id,
                    IntegrationId=integration["IntegrationId"],
                )
                deployed = {r["IntegrationResponseKey"]: r for r in responses}
                wanted = spec.get("integration_responses", {})
                self.assertEqual(set(deployed), set(wanted))
                for selection, name in wanted.items():
                    if name is None:
                        # An acknowledging integration response: no template to select.
                        self.assertFalse(deployed[selection].get("ResponseTemplates"))
                        self.assertFalse(deployed[selection].get("TemplateSelectionExpression"))
                        continue
                    self.assertEqual(deployed[selection].get("ResponseTemplates"), {"$default": template(name)})
                    self.assertEqual(deployed[selection].get("TemplateSelectionExpression"), ALWAYS_DEFAULT)
                if spec["integration"]["type"] != "AWS_PROXY":
                    self.assertTrue(deployed, "AWS requires at least one integration response on a non-proxy integration")

    def test_route_responses_exist_where_the_route_table_says(self):
        for key, spec in self.table["routes"].items():
            with self.subTest(route=key):
                route = self.routes[key]
                responses = [
                    self.client.get_route_response(ApiId=self.api_id, RouteId=route_id, RouteResponseId=response_id)
                    for route_id, response_id in self.route_response_ids
                    if route_id == route["RouteId"]
                ]
                if spec.get("route_response"):
                    self.assertEqual(route.get("RouteResponseSelectionExpression"), "$default")
                    self.assertEqual([r["RouteResponseKey"] for r in responses], ["$default"])
                else:
                    self.assertFalse(route.get("RouteResponseSelectionExpression"))
                    self.assertEqual(responses, [])

    def test_stage_variables_are_the_route_tables(self):
        stage = self.client.get_stage(ApiId=self.api_id, StageName=self.stage)
        variables = stage.get("StageVariables", {})
        self.assertEqual(set(variables), set(self.table["stage_variables"]))
        for name, value in variables.items():
            self.assertTrue(value, f"stage variable {name} is empty")
        self.assertRegex(variables["messages_topic_arn"], r"^arn:aws:sns:")
        self.assertTrue(variables["messages_queue_url"].startswith("http"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
