// Types shared by main.bicep and the modules.

@export()
@description('One Azure OpenAI model deployment. The postprovision hook turns each entry into a router catalogue entry (name = deployment name; prices from infra/hooks/model-prices.json, keyed by model).')
type modelDeployment = {
  @description('Deployment name. The router calls the model by this name, and it is the catalogue name.')
  @minLength(2)
  @maxLength(64)
  name: string

  @description('Azure OpenAI model, for example gpt-4.1-mini. Keys the price table.')
  model: string

  @description('Model version, for example 2025-04-14.')
  version: string

  @description('Deployment type: GlobalStandard, DataZoneStandard or Standard (pay-as-you-go), or a provisioned (PTU) type; a provisioned one is a provisioned backend in the catalogue.')
  sku: 'GlobalStandard' | 'DataZoneStandard' | 'Standard' | 'GlobalProvisionedManaged' | 'DataZoneProvisionedManaged' | 'ProvisionedManaged'

  @description('Capacity: units of 1,000 tokens per minute for a standard type, PTUs for a provisioned one (your quota must cover it).')
  @minValue(1)
  capacity: int

  @description('Catalogue model this deployment serves (default: its own name). Deployments naming the same catalogModel become that model\'s backends.')
  catalogModel: string?

  @description('Backend priority within its catalogue model, lower first (default: 1 for a provisioned type, 2 otherwise).')
  @minValue(0)
  priority: int?

  @description('Backend weight within its priority (default 1).')
  @minValue(1)
  weight: int?

  @description('A standard deployment in this resource that Azure spills this (provisioned) one over to; the router sends x-ms-spillover-deployment.')
  spilloverDeployment: string?
}
