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

  @description('Deployment type: GlobalStandard, DataZoneStandard or Standard.')
  sku: 'GlobalStandard' | 'DataZoneStandard' | 'Standard'

  @description('Capacity in units of 1,000 tokens per minute (your quota must cover it).')
  @minValue(1)
  capacity: int
}
